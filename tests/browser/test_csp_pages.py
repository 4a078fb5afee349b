"""Pages that are not the console's own keep a strict content security policy and still work: the API's
Swagger UI (served from our static files, no other origin) and the admin with django-rq's pages."""

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def watch(page, base_url):
    """Collect CSP refusals and requests to any other origin."""
    problems = []
    page.on(
        "console",
        lambda message: problems.append(f"{page.url}: {message.text} {message.location}")
        if "Content Security Policy" in message.text or "Refused to" in message.text
        else None,
    )
    page.on(
        "request",
        lambda request: problems.append(f"request to {request.url}")
        if not request.url.startswith((base_url, "data:"))
        else None,
    )
    return problems


def test_swagger_ui_is_served_by_the_console(browser_page, live_server, owner):
    page = browser_page
    problems = watch(page, live_server.url)
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("acme-owner")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

    response = page.goto("/api/v1/docs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI drew the operations from our schema: the page is not blank.
    page.get_by_text("/api/v1/images/", exact=True).first.wait_for()
    assert page.locator(".opblock").count() > 10
    assert problems == []


def test_admin_and_rq_pages_have_a_policy_and_work_under_it(browser_page, live_server, admin_user, rq_redis):
    page = browser_page
    problems = watch(page, live_server.url)
    page.goto("/admin/login/")
    page.locator("#id_username").fill("platform-admin")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(lambda url: "/admin/login/" not in url)

    for path in ["/admin/", "/admin/images/image/", "/admin/rq/", "/admin/rq/queues/0/"]:
        response = page.goto(path)
        assert response.status == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
    # django-rq's inline script ran (it is allowed by its hash): the select-all box drives the rows.
    assert page.locator("#action-toggle").count() == 1
    assert problems == []
