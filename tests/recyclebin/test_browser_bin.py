"""A user in Chromium: deletes an image from the list, finds it in the recycle bin, restores it, deletes it
again and destroys it; sees the delete button's label follow the deletion policy; restores and destroys in
batch; and does the same in Simplified Chinese. SCREENSHOT_DIR=/tmp/... keeps screenshots to look at."""

import os
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from images.models import Image
from recyclebin.models import DeletionPolicy
from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def _shot(page, name):
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"bin-{name}.png"), full_page=True)


@pytest.fixture
def catalogue(make_user):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("newcomer"), role=Membership.Role.OWNER)
    for n, name in enumerate(["web-frontend", "db-primary", "ad-controller", "cache-01", "cache-02"]):
        Image.objects.create(
            tenant=tenant,
            name=name,
            disk_format="qcow2",
            os_type="windows" if name.startswith("ad") else "linux",
            platform="CentOS",
            os_version="7.9",
            status="available",
            progress=100,
            size=(n + 1) * 1024**3,
        )
    return tenant


def _login(page):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/images/")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/images/")


def _row(page, name):
    return page.locator("[data-testid=image-row]", has_text=name)


def _bin_row(page, name):
    return page.locator("[data-testid=bin-row]", has_text=name)


def _delete_from_list(page, name, label):
    row = _row(page, name)
    row.get_by_test_id("row-actions").click()
    expect(row.get_by_test_id("row-delete")).to_have_text(label)
    row.get_by_test_id("row-delete").click()
    page.get_by_test_id("confirm-delete").wait_for()


def test_delete_find_restore_delete_again_destroy(browser_page, catalogue, run_jobs):
    page = browser_page
    _login(page)
    _delete_from_list(page, "web-frontend", "Move to recycle bin")
    expect(page.get_by_test_id("delete-explains")).to_contain_text("can be restored until")
    _shot(page, "1-confirm-delayed")
    page.get_by_test_id("confirm-delete").click()
    page.wait_for_url("**/images/")
    expect(_row(page, "web-frontend")).to_have_count(0)

    # Find it in the recycle bin, through the navigation.
    page.get_by_test_id("main-nav").get_by_role("link", name="Recycle bin").click()
    page.wait_for_url("**/recycle-bin/")
    row = _bin_row(page, "web-frontend")
    expect(row).to_have_count(1)
    expect(row.locator("[data-column=deleted_by]")).to_have_text("newcomer")
    expect(page.get_by_test_id("bin-quota-note")).to_contain_text("their size does until they are destroyed")
    _shot(page, "2-bin")

    # Restore: it is back in the list, available.
    row.get_by_test_id("row-restore").click()
    expect(page.get_by_text("“web-frontend” was restored")).to_be_visible()
    expect(_bin_row(page, "web-frontend")).to_have_count(0)
    page.goto("/images/")
    expect(_row(page, "web-frontend").get_by_test_id("image-status")).to_have_text("Available")

    # Delete again, then destroy it from the bin.
    _delete_from_list(page, "web-frontend", "Move to recycle bin")
    page.get_by_test_id("confirm-delete").click()
    page.wait_for_url("**/images/")
    page.goto("/recycle-bin/")
    _bin_row(page, "web-frontend").get_by_test_id("row-destroy").click()
    expect(page.get_by_test_id("destroy-explains")).to_contain_text("cannot be undone")
    _shot(page, "3-confirm-destroy")
    page.get_by_test_id("confirm-destroy").click()
    page.wait_for_url("**/recycle-bin/**")
    expect(_bin_row(page, "web-frontend").get_by_test_id("image-purge-after")).to_have_text("Being destroyed")
    _shot(page, "4-being-destroyed")
    assert run_jobs(["maintenance"]) == 0
    # The page polls while an image is being destroyed; the row goes and the bin is empty.
    expect(page.get_by_test_id("empty-state")).to_contain_text("The recycle bin is empty.", timeout=15000)
    assert not Image.objects.filter(name="web-frontend").exists()


def test_labels_under_each_policy(browser_page, catalogue):
    page = browser_page
    _login(page)
    for mode, label, explains in (
        ("immediate", "Delete", "destroyed at once"),
        ("never", "Move to recycle bin", "until someone destroys it"),
        ("delayed", "Move to recycle bin", "can be restored until"),
    ):
        DeletionPolicy.objects.update_or_create(pk=1, defaults={"mode": mode, "retention_days": Decimal(3)})
        page.goto("/images/")
        expect(page.get_by_test_id("batch-delete")).to_have_text(label)
        _delete_from_list(page, "db-primary", label)
        expect(page.get_by_test_id("delete-explains")).to_contain_text(explains)
        expect(page.get_by_test_id("confirm-delete")).to_have_text(label)
        _shot(page, f"5-confirm-{mode}")


def test_batch_restore_and_destroy(browser_page, catalogue, run_jobs):
    page = browser_page
    _login(page)
    for name in ("db-primary", "cache-01", "cache-02"):
        _row(page, name).get_by_test_id("row-select").check()
    page.get_by_test_id("batch-delete").click()
    dialog = page.get_by_test_id("batch-dialog")
    dialog.get_by_test_id("batch-confirm").click()
    dialog.get_by_test_id("batch-result").wait_for()
    dialog.get_by_test_id("batch-result-close").click()

    page.goto("/recycle-bin/")
    expect(page.get_by_test_id("bin-row")).to_have_count(3)
    for name in ("cache-01", "cache-02"):
        _bin_row(page, name).get_by_test_id("row-select").check()
    expect(page.get_by_test_id("selection-count")).to_have_text("2 selected")
    page.get_by_test_id("bin-batch-restore").click()
    dialog.get_by_test_id("batch-confirm-list").wait_for()
    expect(dialog.get_by_test_id("batch-confirm-row")).to_have_count(2)
    page.wait_for_timeout(400)  # the dialog's fade-in, for the screenshot
    _shot(page, "6-batch-restore-confirm")
    dialog.get_by_test_id("batch-confirm").click()
    dialog.get_by_test_id("batch-result").wait_for()
    expect(dialog.locator("[data-done=yes]")).to_have_count(2)
    _shot(page, "7-batch-restore-result")
    dialog.get_by_test_id("batch-result-close").click()
    expect(page.get_by_test_id("bin-row")).to_have_count(1)

    _bin_row(page, "db-primary").get_by_test_id("row-select").check()
    page.get_by_test_id("bin-batch-destroy").click()
    expect(dialog.get_by_test_id("batch-confirm-list")).to_contain_text("db-primary")
    dialog.get_by_test_id("batch-confirm").click()
    dialog.get_by_test_id("batch-result").wait_for()
    expect(dialog.locator("[data-done=yes]")).to_have_count(1)
    dialog.get_by_test_id("batch-result-close").click()
    assert run_jobs(["maintenance"]) == 0
    expect(page.get_by_test_id("empty-state")).to_be_visible(timeout=15000)
    assert set(Image.objects.values_list("name", flat=True)) == {
        "web-frontend",
        "ad-controller",
        "cache-01",
        "cache-02",
    }


def test_in_simplified_chinese(browser_page, catalogue, run_jobs):
    page = browser_page
    _login(page)
    page.get_by_test_id("language-switcher").get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    _delete_from_list(page, "cache-01", "移入回收站")
    expect(page.get_by_test_id("delete-explains")).to_contain_text("回收站")
    page.get_by_test_id("confirm-delete").click()
    page.wait_for_url("**/images/")
    page.get_by_test_id("main-nav").get_by_role("link", name="回收站").click()
    row = _bin_row(page, "cache-01")
    expect(row.get_by_test_id("image-status")).to_have_text("已删除")
    expect(row.get_by_test_id("row-restore")).to_have_text("还原")
    expect(row.get_by_test_id("row-destroy")).to_have_text("销毁")
    expect(page.get_by_test_id("bin-policy")).to_contain_text("删除策略：延迟删除")
    _shot(page, "8-bin-zh")
    row.get_by_test_id("row-select").check()
    page.get_by_test_id("bin-batch-destroy").click()
    dialog = page.get_by_test_id("batch-dialog")
    expect(dialog.get_by_test_id("batch-confirm")).to_have_text("销毁")
    expect(page.locator("#batch-dialog.show")).to_be_visible()
    page.wait_for_timeout(400)  # the dialog's fade-in, for the screenshot
    _shot(page, "9-batch-destroy-zh")
    dialog.get_by_test_id("batch-confirm").click()
    expect(dialog.get_by_test_id("batch-result")).to_contain_text("正在销毁")
    dialog.get_by_test_id("batch-result-close").click()
    assert run_jobs(["maintenance"]) == 0
    expect(page.get_by_test_id("empty-state")).to_contain_text("回收站是空的", timeout=15000)
