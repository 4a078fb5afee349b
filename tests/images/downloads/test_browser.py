"""In Chromium at 1280 px: the row's Download opens the dialog, a link is generated, copied, used and
revoked; the export dialog and the Exported tab; the same dialog in Chinese."""

import hashlib
import os
import urllib.request

import pytest
from playwright.sync_api import expect

from images.downloads import services
from tests.conftest import PASSWORD

from .conftest import MiB

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def _shot(page, name):
    if SCREENSHOTS:
        page.wait_for_timeout(400)  # the dialog's fade-in
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=False)


def _login(page, username):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/images/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/images/")


def test_download_dialog_generates_copies_and_revokes(browser_page, owner, standalone, store_image, run_jobs):
    image = store_image(standalone, size=4 * MiB, name="centos-7.9")
    page = browser_page
    _login(page, owner.username)
    page.get_by_test_id("row-actions").click()
    page.get_by_test_id("row-download").click()
    dialog = page.get_by_test_id("download-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("download-md5")).to_have_text(image.md5)
    expect(dialog.get_by_test_id("download-filename")).to_have_text("centos-7.9.qcow2")
    _shot(page, "download-dialog-en")
    dialog.get_by_test_id("create-link").click()
    url_box = dialog.get_by_test_id("new-link-url")
    expect(url_box).to_be_visible()
    url = url_box.input_value()
    assert "/d/" in url and url.endswith("/centos-7.9.qcow2")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    dialog.get_by_test_id("copy-link").click()
    expect(dialog.get_by_test_id("copy-link")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == url
    _shot(page, "download-link-en")
    with urllib.request.urlopen(url) as response:  # noqa: S310 - the live server on 127.0.0.1
        assert hashlib.sha256(response.read()).hexdigest() == image.sha256
    expect(dialog.get_by_test_id("live-link")).to_have_count(1)
    dialog.get_by_test_id("revoke-link").click()
    expect(dialog.get_by_test_id("link-revoked")).to_be_visible()
    expect(dialog.get_by_test_id("live-link")).to_have_count(0)
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(url)  # noqa: S310
    assert gone.value.code == 410

    # Export and download: the dialog, the waiting page, the Exported tab.
    page.goto(f"/images/{image.pk}/")
    page.get_by_test_id("detail-export").click()
    expect(page.get_by_test_id("export-form")).to_be_visible()
    page.get_by_test_id("export-format-vmdk").check()
    _shot(page, "export-dialog-en")
    page.get_by_test_id("export-and-download").click()
    expect(page.get_by_test_id("export-wait")).to_be_visible()
    run_jobs(("default",))
    expect(page.get_by_test_id("create-link")).to_be_visible(timeout=10000)
    page.goto("/images/exported/")
    expect(page.get_by_test_id("exported-row")).to_have_count(1)
    expect(page.get_by_test_id("exported-row")).to_have_attribute("data-status", "ready")
    _shot(page, "exported-tab-en")

    # The same in Chinese.
    page.goto("/images/")
    page.get_by_test_id("language-switcher").get_by_role("button", name="简体中文").click()
    page.wait_for_function("document.documentElement.lang === 'zh-hans'")
    page.get_by_test_id("row-actions").click()
    page.get_by_test_id("row-download").click()
    expect(page.get_by_test_id("download-dialog")).to_be_visible()
    expect(page.get_by_test_id("create-link")).to_have_text("生成下载地址")
    page.get_by_test_id("create-link").click()
    expect(page.get_by_test_id("new-link-url")).to_be_visible()
    _shot(page, "download-link-zh")
    page.goto("/images/exported/")
    expect(page.get_by_test_id("tab-exported")).to_have_text("已导出")
    _shot(page, "exported-tab-zh")
    page.goto(f"/images/{image.pk}/")
    page.get_by_test_id("detail-export").click()
    expect(page.get_by_test_id("export-form")).to_be_visible()
    _shot(page, "export-dialog-zh")
    assert services  # the module under test
