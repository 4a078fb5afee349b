"""In a real browser, in English and Chinese at 1280 px: choosing the storage-server kind, its add form in
four sections, the free-disk step with the disk to erase, and a server storage's page; screenshots are
saved under SCREENSHOT_DIR (default test-results/screenshots/) in storage-server/."""

import os
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

from .servers import ROOT_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT_DIR = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
)


def test_add_a_storage_server_in_two_languages(browser_page, live_server, make_storage_server, tmp_path):
    from django.contrib.auth import get_user_model

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
    for language, sections in (
        ("en", ["Basic information", "Server and credentials", "Disk configuration", "Advanced settings"]),
        ("zh-hans", ["基本信息", "服务器与凭据", "磁盘配置", "高级设置"]),
    ):
        page.context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
        page.goto("/admin/storage/imagestorage/add/")
        page.screenshot(path=str(directory / f"{language}-choose-kind.png"), full_page=True)
        page.locator('a[href="?kind=server"]').click()
        for index, title in enumerate(sections, start=1):
            assert title in page.get_by_test_id(f"section-{index}").inner_text()
        page.screenshot(path=str(directory / f"{language}-add.png"), full_page=True)
        page.locator("#id_name").fill(f"srv-{language}")
        page.locator("#id_host").fill(server.address)
        page.locator("#id_password").fill(ROOT_PASSWORD)
        page.locator("#id_mount_path").fill(str(tmp_path / language))
        page.locator('input[name="addition_method"][value="free_disk"]').check()
        page.locator('input[type="submit"]').click()
        page.wait_for_load_state()
        assert disk in page.locator("#id_disk").inner_text()
        page.screenshot(path=str(directory / f"{language}-free-disk.png"), full_page=True)
        page.locator('input[name="addition_method"][value="local_directory"]').check()
        page.locator('input[type="submit"]').click()
        page.wait_for_load_state()
        assert "/change/" in page.url, page.locator(".errorlist").all_inner_texts()
        page.screenshot(path=str(directory / f"{language}-change.png"), full_page=True)
