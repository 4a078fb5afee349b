"""Identity v3 password login, validation, revocation, expiry, membership removal and throttling."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from openstack.models import IdentityToken
from tenants.models import Membership, OperationLog

from ..conftest import PASSWORD

TOKENS = "/openstack/identity/v3/auth/tokens"


def login_body(username, password=PASSWORD, project="acme"):
    scope = {"project": {"name": project, "domain": {"name": "Default"}}} if project else None
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": username, "domain": {"name": "Default"}, "password": password}},
        }
    }
    if scope:
        auth["scope"] = scope
    return json.dumps({"auth": auth})


def login(client, username, **kwargs):
    return client.post(TOKENS, login_body(username, **kwargs), content_type="application/json")


@pytest.fixture
def anonymous():
    return Client()


def test_password_login_answers_a_token_with_the_image_catalog(anonymous, owner, tenant):
    response = login(anonymous, "acme-owner")
    assert response.status_code == 201
    key = response["X-Subject-Token"]
    token = response.json()["token"]
    assert token["project"] == {
        "id": str(tenant.pk),
        "name": "acme",
        "domain": {"id": "default", "name": "Default"},
    }
    assert token["user"]["name"] == "acme-owner"
    assert {"member", "reader"} <= {role["name"] for role in token["roles"]}
    [service] = token["catalog"]
    assert service["type"] == "image"
    assert {e["url"] for e in service["endpoints"]} == {"http://testserver/openstack/image/"}
    # Only the hash is stored.
    assert not IdentityToken.objects.filter(key_hash=key).exists()
    assert IdentityToken.objects.filter(key_hash=IdentityToken.hash_key(key)).exists()
    # The token works on the image API.
    assert Client(HTTP_X_AUTH_TOKEN=key).get("/openstack/image/v2/images").status_code == 200
    assert OperationLog.objects.filter(action="openstack.token.issue", actor=owner).exists()


def test_a_view_only_sub_account_gets_the_reader_role_only(anonymous, subaccount):
    token = login(anonymous, "acme-viewer").json()["token"]
    assert [role["name"] for role in token["roles"]] == ["reader"]


def test_wrong_password_unknown_user_and_foreign_project_are_401(anonymous, owner, other_tenant):
    assert login(anonymous, "acme-owner", password="nope").status_code == 401
    assert login(anonymous, "nobody").status_code == 401
    response = login(anonymous, "acme-owner", project="globex")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


def test_validate_and_revoke(anonymous, owner):
    key = login(anonymous, "acme-owner")["X-Subject-Token"]
    me = Client(HTTP_X_AUTH_TOKEN=key)
    response = me.get(TOKENS, HTTP_X_SUBJECT_TOKEN=key)
    assert response.status_code == 200 and response.json()["token"]["user"]["name"] == "acme-owner"
    assert me.delete(TOKENS, HTTP_X_SUBJECT_TOKEN=key).status_code == 204
    assert me.get("/openstack/image/v2/images").status_code == 401
    assert Client(HTTP_X_AUTH_TOKEN=key).get(TOKENS, HTTP_X_SUBJECT_TOKEN=key).status_code == 401


def test_expired_token_is_refused(anonymous, owner, settings):
    key = login(anonymous, "acme-owner")["X-Subject-Token"]
    IdentityToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client(HTTP_X_AUTH_TOKEN=key).get("/openstack/image/v2/images").status_code == 401


def test_token_lifetime_is_configurable(anonymous, owner, settings):
    settings.OPENSTACK_TOKEN_SECONDS = 120
    login(anonymous, "acme-owner")
    token = IdentityToken.objects.get()
    assert timedelta(seconds=110) < token.expires_at - token.created_at <= timedelta(seconds=121)


def test_token_is_refused_once_the_membership_or_user_is_removed(anonymous, subaccount, tenant):
    key = login(anonymous, "acme-viewer")["X-Subject-Token"]
    client = Client(HTTP_X_AUTH_TOKEN=key)
    assert client.get("/openstack/image/v2/images").status_code == 200
    Membership.objects.filter(user=subaccount).delete()
    assert client.get("/openstack/image/v2/images").status_code == 401
    key = login(anonymous, "acme-owner")["X-Subject-Token"]
    owner = Membership.objects.get(role="owner", tenant=tenant).user
    owner.is_active = False
    owner.save()
    assert Client(HTTP_X_AUTH_TOKEN=key).get("/openstack/image/v2/images").status_code == 401


def test_logins_are_throttled_like_the_console(anonymous, owner, settings):
    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(anonymous, "acme-owner", password="wrong").status_code == 401
    assert login(anonymous, "acme-owner", password="wrong").status_code == 429
    # Locked out now, even with the right password.
    response = login(anonymous, "acme-owner")
    assert response.status_code == 429
    assert "try again later" in response.json()["error"]["message"]
    assert not IdentityToken.objects.exists()


def test_discovery_documents(anonymous):
    v3 = anonymous.get("/openstack/identity/v3")
    assert v3.status_code == 200 and v3.json()["version"]["id"].startswith("v3")
    versions = anonymous.get("/openstack/image/")
    assert versions.status_code == 300
    assert versions.json()["versions"][0]["links"][0]["href"] == "http://testserver/openstack/image/v2/"


def test_console_api_token_works_as_x_auth_token(owner, tenant):
    from tenants import services

    _token, key = services.api_token_create(user=owner)
    assert Client(HTTP_X_AUTH_TOKEN=key).get("/openstack/image/v2/images").status_code == 200
    assert Client(HTTP_X_AUTH_TOKEN="bogus").get("/openstack/image/v2/images").status_code == 401
    assert Client().get("/openstack/image/v2/images").status_code == 401


def test_x_tenant_chooses_among_the_users_tenants(owner, tenant, other_tenant, make_user):
    from images.models import Image
    from tenants import services

    services.membership_add(tenant=other_tenant, user=owner, role=Membership.Role.SUBACCOUNT)
    Image.objects.create(
        tenant=other_tenant, name="globex-image", disk_format="qcow2", status="available", stage=""
    )
    _token, key = services.api_token_create(user=owner)

    def names(**headers):
        response = Client(HTTP_X_AUTH_TOKEN=key, **headers).get("/openstack/image/v2/images")
        if response.status_code != 200:
            return response.status_code, []
        return 200, [image["name"] for image in response.json()["images"]]

    assert names() == (200, [])  # the first tenant by role: acme, where the user is owner
    assert names(HTTP_X_TENANT="globex") == (200, ["globex-image"])
    assert names(HTTP_X_TENANT=str(other_tenant.pk)) == (200, ["globex-image"])
    third = services.tenant_create(name="initech")
    assert names(HTTP_X_TENANT="initech")[0] == 401
    assert names(HTTP_X_TENANT=str(third.pk))[0] == 401


def test_head_validates_a_token(anonymous, owner):
    key = login(anonymous, "acme-owner")["X-Subject-Token"]
    me = Client(HTTP_X_AUTH_TOKEN=key)
    assert me.head(TOKENS, HTTP_X_SUBJECT_TOKEN=key).status_code == 200
    assert me.head(TOKENS, HTTP_X_SUBJECT_TOKEN="ic-nope").status_code == 404
    assert Client().head(TOKENS, HTTP_X_SUBJECT_TOKEN=key).status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ({"auth": []}, 400),
        ({"auth": {"identity": []}}, 401),
        ({"auth": {"identity": {"methods": "token"}}}, 401),
        ({"auth": {"identity": {"methods": ["password"], "password": []}}}, 400),
        ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "1", "password": "x"}}}}}, 400),
        ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": 5, "password": "x"}}}}}, 400),
        ({"auth": {"identity": json.loads(login_body("acme-owner"))["auth"]["identity"], "scope": {"project": "acme"}}}, 400),
        ({"auth": {"identity": json.loads(login_body("acme-owner"))["auth"]["identity"], "scope": "acme"}}, 400),
    ],
)  # fmt: skip
def test_malformed_logins_are_answered_in_keystones_shape(anonymous, owner, body, status):
    response = anonymous.post(TOKENS, json.dumps(body), content_type="application/json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == status
    assert not IdentityToken.objects.exists()
