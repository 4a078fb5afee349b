"""The administrators' health panel on the dashboard: the checks of `manage.py doctor`, for staff only."""

import os
import signal

import pytest

from tests.conftest import PASSWORD

HEALTH = "/health/"


def test_only_staff_see_the_panel(admin_client, owner_client, tenant):
    assert 'data-testid="health-panel"' in admin_client.get("/").content.decode()
    assert 'data-testid="health-panel"' not in owner_client.get("/").content.decode()
    assert owner_client.get(HEALTH).status_code == 404


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(HEALTH)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_panel_lists_problems(admin_client, settings, tmp_path, tenant):
    url = f"unix://{tmp_path / 'no-redis.sock'}?db=0"
    settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
    body = admin_client.get(HEALTH).content.decode()
    assert 'data-testid="health-checks"' in body
    assert f"Cannot reach Redis at {url}" in body
    assert 'data-status="problem"' in body and "problem found" in body


@pytest.mark.django_db(transaction=True)
def test_an_administrator_sees_the_workers_and_what_is_wrong(browser_page, make_user, start_worker, rq_redis):
    from tenants import services

    services.tenant_create(name="acme")
    make_user("root", staff=True)
    worker = start_worker()
    page = browser_page
    page.goto("/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    panel = page.get_by_test_id("health-panel")
    checks = panel.get_by_test_id("health-checks")
    checks.wait_for()
    imports = checks.locator("tr", has_text="Workers (imports)")
    assert imports.get_attribute("data-status") == "ok"
    assert f":{worker.pid}" in imports.inner_text()
    assert checks.locator("tr", has_text="Staging (convert)").get_attribute("data-status") == "ok"
    cron = checks.locator("tr", has_text="Periodic jobs")
    assert cron.get_attribute("data-status") == "problem"
    assert "manage.py rqcron imageconsole.cron" in cron.inner_text()
    assert "1 problem found" in panel.get_by_test_id("health-summary").inner_text()
    page.set_viewport_size({"width": 1280, "height": 1100})
    page.screenshot(path="/tmp/i18-health-en.png", full_page=True)

    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    panel.get_by_role("button", name="Check again").click()
    checks.locator("tr", has_text="Registered but stopped").first.wait_for()
    imports = checks.locator("tr", has_text="Workers (imports)")
    assert imports.get_attribute("data-status") == "problem"
    assert "Registered but stopped" in imports.inner_text()

    page.get_by_test_id("language-switcher").get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    page.get_by_test_id("health-checks").wait_for()
    assert page.get_by_role("heading", name="控制台健康状况").is_visible()
    page.screenshot(path="/tmp/i18-health-zh.png", full_page=True)
