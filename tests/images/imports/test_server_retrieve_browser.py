"""In a real browser, in English and Chinese at 1280 px: a server storage's page links to Retrieve existing
images, whose page lists the image files found on the server; screenshots are saved under SCREENSHOT_DIR
(default test-results/screenshots/) in server-retrieve/."""

import os
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.storage.conftest import make_server_storage, make_storage_server, storage_server  # noqa: F401

from .test_server_retrieve import server_incoming  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT_DIR = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[3] / "test-results" / "screenshots"
)


def test_retrieve_from_a_server_storage_in_two_languages(
    browser_page,
    live_server,
    tenant,
    server_incoming,  # noqa: F811
):
    from django.contrib.auth import get_user_model

    storage, _backend, _files = server_incoming
    get_user_model().objects.create_superuser("root-admin", "a@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/admin/login/")
    page.locator("#id_username").fill("root-admin")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#id_password").press("Enter")
    page.wait_for_load_state()
    directory = SCREENSHOT_DIR / "server-retrieve"
    directory.mkdir(parents=True, exist_ok=True)
    for language, link in (("en", "Retrieve existing images"), ("zh-hans", "纳管已有镜像")):
        page.context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
        page.goto(f"/admin/storage/imagestorage/{storage.pk}/change/")
        page.get_by_role("link", name=link).click()
        page.wait_for_load_state()
        assert f"{storage.host}:{storage.mount_path}" in page.locator("#content-main").inner_text()
        page.locator("#id_directory").fill("incoming")
        page.locator("#id_tenant").select_option(str(tenant.pk))
        page.locator('input[name="find"]').click()
        page.wait_for_load_state()
        rows = page.get_by_test_id("found-images").locator("tbody tr").all_inner_texts()
        assert len(rows) == 2 and any("centos 7.9.qcow2" in row for row in rows), rows
        assert not any("escape" in row for row in rows)
        page.screenshot(path=str(directory / f"{language}-found.png"), full_page=True)
