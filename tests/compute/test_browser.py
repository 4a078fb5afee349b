"""Playwright: Create VM from an image's row, watch it go running, see its screen, stop it, delete it."""

import os

import pytest
from playwright.sync_api import expect

from compute.models import VirtualMachine
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
SHOTS = os.environ.get("SCREENSHOT_DIR")


def _shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, name), full_page=True)


def test_create_vm_from_the_image_row_and_watch_it_run(browser_page, compute_host, boot_image, run_jobs, settings):
    settings.COMPUTE_STOP_TIMEOUT = 2
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

    page.get_by_test_id("vm-stop").click()
    assert run_jobs() == 0  # the guest ignores ACPI: powered off after the (short) timeout
    expect(page.get_by_test_id("vm-state")).to_have_text("Stopped", timeout=20000)

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
    page.goto(f"/images/{boot_image.pk}/")
    _shot(page, "image-boot-check-zh.png")
