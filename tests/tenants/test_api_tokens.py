"""API tokens may expire: an expired token is refused with a message that says so, and the owner of the
tokens sees when each one expires and when it was last used."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tenants import services
from tenants.models import ApiToken


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_token_with_an_expiry_works_until_then(client, owner):
    key = run("createapitoken", "acme-owner", "--name", "ci", "--days", "30").strip()
    token = ApiToken.objects.get(prefix=key[:8])
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)

    response = client.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None

    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = client.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_token_without_expiry_never_expires(client, owner):
    token, key = services.api_token_create(user=owner)
    assert token.expires_at is None
    ApiToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - timedelta(days=3650))
    assert client.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_the_token_list_shows_expiry_and_last_use(client, owner):
    _used, key = services.api_token_create(user=owner, name="deploy", expires_in_days=7)
    services.api_token_create(user=owner, name="forever")
    client.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Token {key}")
    lines = run("createapitoken", "acme-owner", "--list").splitlines()
    assert "expires" in lines[0] and "last used" in lines[0]
    deploy = next(line for line in lines if " deploy " in line)
    today = timezone.now().strftime("%Y-%m-%d")
    in_a_week = (timezone.now() + timedelta(days=7)).strftime("%Y-%m-%d")
    assert in_a_week in deploy and deploy.split()[-2] == today  # last used: today
    forever = next(line for line in lines if " forever " in line)
    assert forever.split()[-2:] == ["-", "-"]  # never expires, never used


def test_an_expiry_of_less_than_a_day_is_refused(owner):
    with pytest.raises(CommandError, match="at least one day"):
        run("createapitoken", "acme-owner", "--days", "0")
    assert not ApiToken.objects.exists()


def test_no_key_starts_with_a_dash():
    """A key that starts with "-" is read as an option on a command line (glance --os-auth-token KEY):
    the glance CLI test failed once in 16 runs on such a key."""
    from tenants.models import ApiToken

    keys = [ApiToken.generate_key() for _ in range(2000)]
    assert not [key for key in keys if key.startswith("-")]
    assert all(len(key) == 43 for key in keys)
