"""A new user logs in, switches the console to Simplified Chinese and back, and finds the shell."""

import pytest

from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_switch_language_and_back(browser_page, make_user):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("newcomer"), role=Membership.Role.OWNER)
    page = browser_page

    page.goto("/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    nav = page.get_by_test_id("main-nav")
    for label in ["Images", "ISO images", "Recycle bin", "VMs", "Storages", "Operation log"]:
        assert nav.get_by_role("link", name=label, exact=True).is_visible()
    assert page.get_by_test_id("current-tenant").inner_text() == "acme"

    page.get_by_test_id("language-switcher").get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    for label in ["自制镜像", "ISO 镜像", "回收站", "虚拟机", "镜像存储", "操作日志"]:
        assert nav.get_by_role("link", name=label, exact=True).is_visible()

    nav.get_by_role("link", name="操作日志", exact=True).click()
    assert page.get_by_role("heading", name="操作日志").is_visible()

    page.get_by_test_id("language-switcher").get_by_role("button", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="Operation log").is_visible()
    assert nav.get_by_role("link", name="Images", exact=True).is_visible()
