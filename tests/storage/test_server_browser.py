"""In a real browser, in English and Chinese at 1280 px: choosing the storage-server kind and walking its
four add steps (a refused connection kept at step 2, the free-disk step with the disk to erase, Back, the
review) to the new storage's page; screenshots are saved under SCREENSHOT_DIR (default
test-results/screenshots/) in storage-server/."""

import os
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

from .servers import ROOT_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT_DIR = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
)
TEXTS = {
    "en": {
        "steps": ["Basic information", "Server and credentials", "Disk configuration", "Advanced settings"],
        "refused": "Cannot reach the storage server",
        "confirm": "Confirm that all data on",
    },
    "zh-hans": {
        "steps": ["基本信息", "服务器与凭据", "磁盘配置", "高级设置"],
        "refused": "无法连接镜像存储“",
        "confirm": "请确认清除",
    },
}


def test_add_a_storage_server_in_two_languages(browser_page, live_server, make_storage_server, tmp_path):
    from django.contrib.auth import get_user_model

    from storage.models import ImageStorage

    get_user_model().objects.create_superuser("root-admin", "a@example.com", PASSWORD)
    server = make_storage_server()
    disk = server.add_loop_disk(32 * 1024 * 1024)
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/admin/login/")
    page.locator("#id_username").fill("root-admin")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#id_password").press("Enter")
    page.wait_for_load_state()
    directory = SCREENSHOT_DIR / "storage-server"
    directory.mkdir(parents=True, exist_ok=True)

    def shot(name):
        page.screenshot(path=str(directory / f"{language}-{name}.png"), full_page=True)

    def next_step():
        page.locator('input[type="submit"].default').click()
        page.wait_for_load_state()

    def back():
        page.locator('input[name="wizard_back"]').click()
        page.wait_for_load_state()

    def on_step(number):
        current = page.locator(".wizard-steps li.current").inner_text()
        assert texts["steps"][number - 1] in current, (current, page.locator(".errorlist").all_inner_texts())
        # Fits the window: no horizontal scrollbar.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    for language, texts in TEXTS.items():
        page.context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
        page.goto("/admin/storage/imagestorage/add/")
        shot("choose-kind")
        page.locator('a[href="?kind=server"]').click()
        page.wait_for_load_state()
        assert page.get_by_test_id("wizard-steps").inner_text().split("\n") == [
            f"{number} {title}" for number, title in enumerate(texts["steps"], start=1)
        ]
        on_step(1)
        shot("1-basic")
        page.locator("#id_name").fill(f"srv-{language}")
        next_step()

        # Step 2: a refused connection keeps the wizard here, with the reason next to the address.
        on_step(2)
        page.locator("#id_host").fill(server.host_address)
        page.locator("#id_ssh_port").fill("2")
        page.locator("#id_password").fill(ROOT_PASSWORD)
        next_step()
        on_step(2)
        assert texts["refused"] in page.locator(".field-host .errorlist").inner_text()
        assert page.locator("#id_password").input_value() == ""
        shot("2-refused")
        page.locator("#id_host").fill(server.address)
        page.locator("#id_ssh_port").fill("22")
        page.locator("#id_password").fill(ROOT_PASSWORD)
        next_step()

        # Step 3: the free disks of the server; the disk rows show only with Free disk.
        on_step(3)
        assert page.locator("#id_disk").is_hidden()
        page.locator('input[name="addition_method"][value="free_disk"]').check()
        assert disk in page.locator("#id_disk").inner_text()
        page.locator("#id_disk").select_option(disk)
        page.locator("#id_mount_path").fill(str(tmp_path / language))
        next_step()
        on_step(3)
        assert texts["confirm"] in page.locator(".field-confirm_erase .errorlist").inner_text()
        shot("3-free-disk")
        # Back to step 2 and on again: what was entered is kept, the password is not asked again.
        back()
        on_step(2)
        assert page.locator("#id_host").input_value() == server.address
        next_step()
        on_step(3)
        assert page.locator("#id_mount_path").input_value() == str(tmp_path / language)
        page.locator('input[name="addition_method"][value="local_directory"]').check()
        assert page.locator("#id_disk").is_hidden()
        shot("3-local-directory")
        next_step()

        # Step 4: advanced settings and the review of the earlier steps.
        on_step(4)
        assert f"root@{server.address}:22" in page.get_by_test_id("review").inner_text()
        page.locator("#id_sync_network").fill("10.9.0.0/24")
        shot("4-advanced")
        next_step()
        assert "/change/" in page.url, page.locator(".errorlist").all_inner_texts()
        shot("change")
        assert ImageStorage.objects.get(name=f"srv-{language}").state == ImageStorage.State.CONNECTED
