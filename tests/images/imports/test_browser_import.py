"""In Chromium, as a user would: import a small qcow2 from the wizard, watch the progress bar, and see
the row in the list become available without reloading the page."""

import re

import pytest
from playwright.sync_api import expect

from images.models import Image, UploadSession
from storage.services import storage_create_default
from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD

from .conftest import MiB

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk"])
def test_import_from_the_wizard(fmt, browser_page, make_user, disks, run_jobs):
    """A qcow2 is stored as it arrives, and the last PATCH makes it available: the list shows it so at
    once. A VMDK is converted by a job after it: its row turns available without a reload."""
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("importer"), role=Membership.Role.OWNER)
    storage_create_default()
    sent = disks.convert(disks.raw(size=8 * MiB), fmt, f"centos-7.9.{fmt}")
    page = browser_page

    page.goto("/images/import/")
    page.get_by_label("Username").fill("importer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Import image")).to_be_visible()

    page.get_by_label("Name").fill("CentOS 7.9 (base)")
    page.get_by_label("Format").select_option(fmt)
    page.get_by_label("System architecture").select_option("aarch64")
    # aarch64 boots with UEFI: the wizard chose it and BIOS cannot be chosen.
    expect(page.get_by_label("Boot mode")).to_have_value("uefi")
    page.get_by_label("System architecture").select_option("x86_64")
    page.get_by_label("Boot mode").select_option("bios")
    page.get_by_label("System platform").fill("CentOS")
    page.get_by_label("System version").fill("7.9")
    page.get_by_label("Labels").fill("base, centos")
    page.get_by_test_id("image-file").set_input_files(str(sent))

    # A slow uplink, so that the bar can be seen moving.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 2 * MiB},
    )
    page.get_by_test_id("import-submit").click()

    expect(page.get_by_test_id("upload-panel")).to_be_visible()
    expect(page.get_by_test_id("upload-panel")).to_contain_text(f"centos-7.9.{fmt}")
    # Part way: bytes sent so far, a speed and the time left.
    page.wait_for_function(
        "() => { const n = Number(document.querySelector('[data-testid=upload-progress]')"
        ".getAttribute('aria-valuenow')); return n > 0 && n < 100; }",
        timeout=30000,
    )
    expect(page.get_by_test_id("upload-bytes")).to_contain_text(re.compile(r"B of \d+\.\d MB"))
    expect(page.get_by_test_id("upload-speed")).to_contain_text("/s")
    # A reload now would land on the image's upload page, which resumes it.
    assert "/upload/" in page.url

    expect(page.get_by_test_id("upload-status")).to_contain_text("Upload complete", timeout=60000)
    expect(page.get_by_test_id("upload-progress")).to_have_attribute("aria-valuenow", "100")
    # Done: the wizard takes the user to the list.
    page.wait_for_url(re.compile(r"/images/$"), timeout=60000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    image = Image.objects.get(name="CentOS 7.9 (base)")
    row = page.locator(f"#image-row-{image.pk}")
    if fmt == "vmdk":  # being converted: the row follows the job
        expect(row.get_by_test_id("image-status")).to_contain_text("Importing")
        page.evaluate("() => { window.notReloaded = true; }")
        assert run_jobs() == 0  # the worker converts and stores it meanwhile
        expect(row.get_by_test_id("image-status")).to_contain_text("Available", timeout=60000)
        assert page.evaluate("() => window.notReloaded === true")
    else:
        expect(row.get_by_test_id("image-status")).to_contain_text("Available")
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE
    assert image.labels == ["base", "centos"]
    if fmt == "qcow2":
        assert image.size == sent.stat().st_size


def test_a_reload_mid_upload_resumes_at_the_servers_offset(browser_page, make_user, disks, run_jobs):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("importer"), role=Membership.Role.OWNER)
    storage_create_default()
    raw = disks.root / "random.raw"
    raw.write_bytes(__import__("os").urandom(8 * MiB))
    page = browser_page
    page.goto("/images/import/")
    page.get_by_label("Username").fill("importer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Name").fill("resumed disk")
    page.get_by_label("Format").select_option("raw")
    page.get_by_label("System platform").fill("CentOS")
    page.get_by_label("System version").fill("7.9")
    page.get_by_test_id("image-file").set_input_files(str(raw))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": MiB},
    )
    page.get_by_test_id("import-submit").click()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=upload-progress]').getAttribute('aria-valuenow')) >= 30",
        timeout=30000,
    )
    image = Image.objects.get(name="resumed disk")

    page.reload()  # the upload is cut off; the page is now the image's upload page
    assert page.url.endswith(f"/images/{image.pk}/upload/")
    # The server keeps what arrived before the connection was cut.
    import time

    deadline = time.monotonic() + 30
    while not UploadSession.objects.filter(image=image, offset__gt=0).exists():
        assert time.monotonic() < deadline, "the server kept nothing of the interrupted upload"
        time.sleep(0.1)
    kept = UploadSession.objects.get(image=image).offset
    assert kept < 8 * MiB
    page.reload()
    expect(page.get_by_test_id("upload-form")).to_contain_text("stopped after")

    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    page.get_by_test_id("image-file").set_input_files(str(raw))
    page.get_by_test_id("upload-submit").click()
    page.wait_for_url(re.compile(r"/images/$"), timeout=60000)
    image.upload.refresh_from_db()
    assert image.upload.offset == 8 * MiB and image.upload.resumes == 1
    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    import hashlib

    assert image.sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()


def test_cancel_during_the_upload(browser_page, make_user, disks):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("importer"), role=Membership.Role.OWNER)
    storage_create_default()
    raw = disks.root / "random.raw"
    # 32 s at the 1 MiB/s below: the last PATCH makes an image available, so the cancel must land first.
    raw.write_bytes(__import__("os").urandom(32 * MiB))
    page = browser_page
    page.goto("/images/import/")
    page.get_by_label("Username").fill("importer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Name").fill("cancelled disk")
    page.get_by_label("Format").select_option("raw")
    page.get_by_label("System platform").fill("CentOS")
    page.get_by_label("System version").fill("7.9")
    page.get_by_test_id("image-file").set_input_files(str(raw))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": MiB},
    )
    page.get_by_test_id("import-submit").click()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=upload-progress]').getAttribute('aria-valuenow')) >= 3",
        timeout=30000,
    )
    # Cancel asks first: "Back" keeps the upload going.
    page.get_by_test_id("upload-cancel").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Cancel this import?")
    dialog.get_by_test_id("confirm-back").click()
    expect(dialog).to_be_hidden()
    assert Image.objects.get(name="cancelled disk").status == Image.Status.UPLOADING
    page.get_by_test_id("upload-cancel").click()
    dialog.get_by_test_id("confirm-ok").click()
    page.wait_for_url(re.compile(r"/images/$"), timeout=30000)
    image = Image.objects.get(name="cancelled disk")
    assert image.status == Image.Status.FAILED and "cancelled by importer" in image.error
    assert image.failure_reason == Image.FailureReason.CANCELLED
    expect(page.locator(f"#image-row-{image.pk}").get_by_test_id("image-status")).to_contain_text("Cancelled")
