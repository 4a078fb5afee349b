"""In Chromium at 1280 px: the wizard uploads a file verified by the line for its name in a SHA256SUMS
(the page sends the chosen file's name), and the image's page shows the verified checksum; in English and
in Chinese."""

import hashlib
import os
import re

import pytest
from playwright.sync_api import expect

from images.models import Image
from storage.services import storage_create_default
from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD
from tests.images.fetch.conftest import FileRoute
from tests.images.imports.conftest import MiB

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fetch_settings")]

SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def _shot(page, name):
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


def test_wizard_upload_verified_by_a_checksum_file(browser_page, make_user, disks, http_server, run_jobs):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("importer"), role=Membership.Role.OWNER)
    storage_create_default()
    qcow2 = disks.convert(disks.raw(size=4 * MiB), "qcow2", "debian-12-genericcloud-amd64.qcow2")
    value = hashlib.sha512(qcow2.read_bytes()).hexdigest()
    server = http_server()
    server.routes["/cloud/bookworm/latest/SHA512SUMS"] = FileRoute(
        f"{hashlib.sha512(b'x').hexdigest()}  debian-12-genericcloud-arm64.qcow2\n"
        f"{value}  debian-12-genericcloud-amd64.qcow2\n".encode()
    )
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/images/import/")
    page.get_by_label("Username").fill("importer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_label("Name").fill("Debian 12")
    page.get_by_label("System platform").fill("Debian")
    page.get_by_test_id("image-file").set_input_files(str(qcow2))
    page.get_by_label("Checksum file URL").fill(server.url("/cloud/bookworm/latest/SHA512SUMS"))
    _shot(page, "import-checksum-en")
    page.get_by_test_id("import-submit").click()
    expect(page.get_by_test_id("upload-status")).to_contain_text("Upload complete", timeout=60000)
    page.wait_for_url(re.compile(r"/images/$"), timeout=60000)
    assert run_jobs() == 0

    image = Image.objects.get(name="Debian 12")
    assert image.status == Image.Status.AVAILABLE, image.error
    assert (image.checksum_algorithm, image.checksum_expected, image.checksum_source) == (
        "sha512",
        value,
        "file",
    )
    page.goto(f"/images/{image.pk}/")
    checksum = page.get_by_test_id("image-checksum")
    expect(checksum).to_contain_text(value)
    expect(checksum).to_contain_text("SHA-512")
    expect(checksum.get_by_test_id("checksum-verified")).to_be_visible()
    _shot(page, "detail-checksum-en")

    page.get_by_test_id("language-switcher").get_by_role("button", name="简体中文").click()
    page.wait_for_function("document.documentElement.lang === 'zh-hans'")
    expect(page.get_by_test_id("checksum-verified")).to_have_text("已校验")
    _shot(page, "detail-checksum-zh")
    page.goto("/images/import/")
    expect(page.get_by_text("校验文件地址")).to_be_visible()
    _shot(page, "import-checksum-zh")


def test_wizard_names_the_missing_line(browser_page, make_user, disks, http_server):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("importer"), role=Membership.Role.OWNER)
    storage_create_default()
    qcow2 = disks.convert(disks.raw(size=1 * MiB), "qcow2", "mine.qcow2")
    server = http_server()
    server.routes["/SHA256SUMS"] = FileRoute(f"{hashlib.sha256(b'x').hexdigest()}  theirs.qcow2\n".encode())
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/images/import/")
    page.get_by_label("Username").fill("importer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_label("Name").fill("Mine")
    page.get_by_test_id("image-file").set_input_files(str(qcow2))
    page.get_by_label("Checksum file URL").fill(server.url("/SHA256SUMS"))
    page.get_by_test_id("import-submit").click()

    error = page.locator("[data-error-for=checksum_file_url]")
    expect(error).to_contain_text("no entry for mine.qcow2")
    assert not Image.objects.exists()
