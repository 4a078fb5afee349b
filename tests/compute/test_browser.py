"""Playwright: Create VM from an image's row, watch it go running, see its screen, stop it, delete it."""

import os
import re

import pytest
from playwright.sync_api import expect

from compute.models import VirtualMachine
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
SHOTS = os.environ.get("SCREENSHOT_DIR")


def _shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, name), full_page=True)


def test_create_vm_from_the_image_row_and_watch_it_run(
    browser_page, compute_host, boot_image, run_jobs, settings
):
    settings.COMPUTE_STOP_TIMEOUT = 2
    settings.COMPUTE_REBOOT_TIMEOUT = 2
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/images/")
    page.get_by_label("Username").fill("acme-owner")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    row = page.locator("tr", has_text="tiny-linux")
    row.get_by_role("link", name="Create VM").click()
    expect(page.get_by_role("heading", name="Create VM")).to_be_visible()
    expect(page.get_by_test_id("vm-image")).to_contain_text("tiny-linux")
    page.get_by_label("Name", exact=True).fill("demo-vm")
    page.get_by_label("Memory (MiB)").fill("256")
    page.get_by_label("Administrator password").fill("correct-horse-9")
    _shot(page, "vm-create-en.png")
    page.get_by_test_id("vm-create-submit").click()
    expect(page.get_by_test_id("vm-state")).to_have_text("Creating")

    assert run_jobs() == 0  # the worker uploads the image to the host and starts the VM
    expect(page.get_by_test_id("vm-state")).to_have_text("Running", timeout=20000)
    screen = page.get_by_test_id("vm-screen")
    expect(screen).to_be_visible()
    # The screenshot loaded (the summary may be redrawn meanwhile: ask the current image each time).
    for _attempt in range(40):
        if page.get_by_test_id("vm-screen").evaluate("img => img.complete && img.naturalWidth") > 0:
            break
        page.wait_for_timeout(250)
    else:
        raise AssertionError("the VM's screen never loaded")
    expect(page.get_by_test_id("vm-console")).to_contain_text("IMAGECONSOLE-BOOT-OK", timeout=90000)
    _shot(page, "vm-detail-en.png")

    # Reboot: the guest ignores the ACPI power button, so it is reset after the (short) timeout; the page
    # says so.
    page.get_by_test_id("vm-reboot").click()
    expect(page.get_by_text("restart through ACPI and reset if it does not react")).to_be_visible()
    assert run_jobs() == 0
    expect(page.get_by_test_id("vm-last-reboot")).to_have_attribute("data-how", "reset", timeout=20000)
    expect(page.get_by_test_id("vm-last-reboot")).to_contain_text("did not react to the ACPI reboot")

    page.get_by_test_id("vm-stop").click()
    assert run_jobs() == 0  # the guest ignores ACPI: powered off after the (short) timeout
    expect(page.get_by_test_id("vm-state")).to_have_text("Stopped", timeout=20000)

    # Export as OVA: listed on the VM's page and on the images' Exported tab with its MD5.
    page.get_by_test_id("vm-export").click()
    expect(page.get_by_text("it appears under Exported in the image list")).to_be_visible()
    assert run_jobs() == 0
    page.reload()
    exports = page.get_by_test_id("vm-exports")
    expect(exports.locator("tr[data-state=ready]")).to_contain_text("demo-vm.ova")
    _shot(page, "vm-detail-exported-en.png")
    page.goto("/images/exported/")
    ova_row = page.get_by_test_id("exported-row").filter(has_text="demo-vm.ova")
    expect(ova_row.get_by_test_id("export-md5")).to_have_text(re.compile(r"^[0-9a-f]{32}$"))
    _shot(page, "images-exported-ova-en.png")
    vm_pk = VirtualMachine.objects.get().pk
    root = page.url.split("/images/")[0] + "/"
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": root}])
    page.goto(f"/vms/{vm_pk}/")
    expect(page.get_by_test_id("vm-last-reboot")).to_be_visible()
    _shot(page, "vm-detail-exported-zh.png")
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": root}])
    page.goto(f"/vms/{vm_pk}/")

    page.get_by_test_id("vm-delete").click()
    page.get_by_test_id("vm-delete-confirm").click()
    expect(page.get_by_text("Deleted the VM “demo-vm”.")).to_be_visible()
    expect(page.locator("[data-vm=demo-vm]")).to_have_count(0)
    assert not VirtualMachine.objects.exists()

    # Boot check from the image's page: the result, the screen's thumbnail and the console stay there.
    settings.COMPUTE_BOOT_CHECK_SECONDS = 8
    page.goto(f"/images/{boot_image.pk}/")
    page.get_by_test_id("boot-check-start").click()
    assert run_jobs() == 0
    expect(page.get_by_test_id("boot-check-result")).to_have_attribute("data-state", "passed", timeout=15000)
    expect(page.get_by_test_id("boot-check-console")).to_contain_text("SeaBIOS")
    _shot(page, "image-boot-check-en.png")

    # The same pages in Simplified Chinese.
    root = page.url.split("/images/")[0] + "/"
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": root}])
    page.goto(f"/vms/create/?image={boot_image.pk}")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    _shot(page, "vm-create-zh.png")
    page.goto("/vms/")
    _shot(page, "vm-list-zh.png")
    page.goto("/images/exported/")
    expect(page.get_by_test_id("exported-row").filter(has_text="demo-vm.ova")).to_have_count(1)
    _shot(page, "images-exported-ova-zh.png")
    page.goto(f"/images/{boot_image.pk}/")
    _shot(page, "image-boot-check-zh.png")
