from django.core.management import call_command

from tenants.models import ApiToken


def _token_for(username, capsys):
    call_command("createapitoken", username)
    return capsys.readouterr().out.strip()


def test_token_from_command_authenticates_and_only_its_hash_is_stored(client, owner, capsys):
    key = _token_for("acme-owner", capsys)
    token = ApiToken.objects.get(user=owner)
    assert key not in (token.key_hash, token.prefix) and token.key_hash == ApiToken.hash_key(key)
    response = client.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert response.json() == {
        "username": "acme-owner",
        "tenant": {"id": owner.memberships.get().tenant_id, "name": "acme"},
        "role": "owner",
        "can_manage": True,
    }


def test_wrong_or_missing_token_is_refused(client, owner, capsys):
    _token_for("acme-owner", capsys)
    assert client.get("/api/v1/whoami/", HTTP_AUTHORIZATION="Token not-a-key").status_code == 401
    assert client.get("/api/v1/whoami/").status_code in (401, 403)


def test_x_tenant_header_cannot_reach_another_tenant(client, owner, other_tenant, capsys):
    key = _token_for("acme-owner", capsys)
    response = client.get(
        "/api/v1/whoami/", HTTP_AUTHORIZATION=f"Token {key}", HTTP_X_TENANT=str(other_tenant.pk)
    )
    assert response.status_code == 404
    assert "X-Tenant" in response.json()["detail"]


def test_operation_log_time_filter_takes_any_offset(client, owner, capsys):
    key = _token_for("acme-owner", capsys)
    auth = {"HTTP_AUTHORIZATION": f"Token {key}"}
    # PostgreSQL rejects historic local-mean-time offsets; the filter compares in UTC.
    response = client.get("/api/v1/operation-log/", {"since": "0113-07-11T07:06:23-16:04"}, **auth)
    assert response.status_code == 200
    response = client.get("/api/v1/operation-log/", {"since": "0001-01-01T00:00:00+05:00"}, **auth)
    assert response.status_code == 400 and "years 1 and 9999" in str(response.json())
