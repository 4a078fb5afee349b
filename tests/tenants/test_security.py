from django.test import Client

from tests.conftest import PASSWORD


def test_login_is_throttled_after_repeated_failures(owner, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/accounts/login/", {"username": "acme-owner", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/accounts/login/", {"username": "acme-owner", "password": "wrong"})
    assert response.status_code == 429
    response = client.post("/accounts/login/", {"username": "acme-owner", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_with_the_right_password_works(owner):
    client = Client()
    response = client.post("/accounts/login/", {"username": "acme-owner", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_pages_need_login(client, db):
    response = client.get("/tenants/project-groups/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_security_headers(owner_client):
    response = owner_client.get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_csrf_is_enforced(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/tenants/project-groups/new/", {"name": "x"}).status_code == 403


def test_cookies_are_secure_unless_debug(settings):
    from importlib import reload

    import imageconsole.settings as module

    assert module.SESSION_COOKIE_HTTPONLY
    # The suite runs with SECURE_COOKIES=0; production's default (DEBUG off) is secure cookies.
    import os

    saved = os.environ.pop("SECURE_COOKIES", None)
    try:
        reloaded = reload(module)
        assert reloaded.SESSION_COOKIE_SECURE and reloaded.CSRF_COOKIE_SECURE
    finally:
        if saved is not None:
            os.environ["SECURE_COOKIES"] = saved
        reload(module)


def test_password_change(owner_client, owner):
    response = owner_client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-Much-Better-Passw0rd",
            "new_password2": "a-Much-Better-Passw0rd",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("a-Much-Better-Passw0rd")
