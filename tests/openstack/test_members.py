"""Members with consent: an image shared with a tenant appears to it once it accepted, in the API and in
the console alike."""

import json

import pytest

from images.models import Image, ImageShare

from .conftest import V2
from .test_images import upload  # noqa: F401  (fixture)


@pytest.fixture
def shared(glance, upload, other_tenant):  # noqa: F811
    image_id, data = upload(name="golden")
    response = glance.post(
        f"{V2}/images/{image_id}/members",
        json.dumps({"member": str(other_tenant.pk)}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "pending" and response.json()["member_id"] == str(other_tenant.pk)
    return image_id, data


def ids(client, query=""):
    return [i["id"] for i in client.get(f"{V2}/images{query}").json()["images"]]


def test_member_sees_the_image_only_once_it_accepted(glance, other_glance, shared, other_tenant):
    image_id, data = shared
    assert glance.get(f"{V2}/images/{image_id}").json()["visibility"] == "shared"
    assert image_id not in ids(other_glance)
    assert other_glance.get(f"{V2}/images/{image_id}").status_code == 404
    assert ids(other_glance, "?member_status=pending") == [image_id]
    assert ids(other_glance, "?member_status=all") == [image_id]
    # The other filters narrow the offered images too.
    assert ids(other_glance, "?member_status=pending&name=golden") == [image_id]
    assert ids(other_glance, "?member_status=pending&name=other") == []
    assert ids(other_glance, "?member_status=pending&status=killed") == []
    # The member reads its own membership; only it can answer.
    [member] = other_glance.get(f"{V2}/images/{image_id}/members").json()["members"]
    assert member["status"] == "pending"
    answer = json.dumps({"status": "accepted"})
    member_url = f"{V2}/images/{image_id}/members/{other_tenant.pk}"
    assert glance.put(member_url, answer, content_type="application/json").status_code == 403
    assert other_glance.get(member_url).json()["status"] == "pending"
    response = other_glance.put(member_url, answer, content_type="application/json")
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert glance.get(member_url).json()["status"] == "accepted"  # the owner reads the answer
    assert image_id in ids(other_glance)
    assert b"".join(other_glance.get(f"{V2}/images/{image_id}/file").streaming_content) == data
    # Read-only for the member.
    ops = json.dumps([{"op": "replace", "path": "/name", "value": "mine"}])
    assert (
        other_glance.patch(
            f"{V2}/images/{image_id}", ops, content_type="application/openstack-images-v2.1-json-patch"
        ).status_code
        == 403
    )
    assert other_glance.delete(f"{V2}/images/{image_id}").status_code == 403
    # Rejected: gone from the list again.
    other_glance.put(member_url, json.dumps({"status": "rejected"}), content_type="application/json")
    assert image_id not in ids(other_glance)
    # The owner removes the member: the image is private again.
    assert other_glance.delete(member_url).status_code == 403
    assert glance.delete(member_url).status_code == 204
    assert Image.objects.get(pk=image_id).sharing == "private"
    assert glance.get(f"{V2}/images/{image_id}/members").json()["members"] == []


def test_adding_a_member_twice_is_a_conflict_and_unknown_tenants_404(glance, shared, other_tenant):
    image_id, _data = shared
    again = glance.post(
        f"{V2}/images/{image_id}/members",
        json.dumps({"member": str(other_tenant.pk)}),
        content_type="application/json",
    )
    assert again.status_code == 409
    unknown = glance.post(
        f"{V2}/images/{image_id}/members", json.dumps({"member": "99999"}), content_type="application/json"
    )
    assert unknown.status_code == 404


def test_a_third_tenant_sees_nothing(shared, make_user):
    from tenants import services
    from tenants.models import Membership

    from .conftest import token_client

    third = services.tenant_create(name="initech")
    user = make_user("initech-owner")
    services.membership_add(tenant=third, user=user, role=Membership.Role.OWNER)
    client = token_client(user)
    image_id, _data = shared
    assert ids(client, "?member_status=all") == []
    assert client.get(f"{V2}/images/{image_id}/members").status_code == 404


def test_console_consent(shared, other_tenant, owner_client):
    from django.test import Client

    image_id, _data = shared
    other_owner = other_tenant.memberships.get(role="owner").user
    console = Client()
    console.force_login(other_owner)
    assert "golden" not in console.get("/images/").content.decode()
    page = console.get("/images/shared-with-us/").content.decode()
    assert "golden" in page and 'data-share-status="pending"' in page
    # The owner's detail page shows who was asked and the answer.
    detail = owner_client.get(f"/images/{image_id}/").content.decode()
    assert 'data-tenant="globex"' in detail and 'data-share-status="pending"' in detail
    response = console.post(f"/images/{image_id}/share-answer/", {"status": "accepted"})
    assert response.status_code == 302
    assert ImageShare.objects.get(image_id=image_id).status == "accepted"
    assert "golden" in console.get("/images/").content.decode()
    assert 'data-share-status="accepted"' in owner_client.get(f"/images/{image_id}/").content.decode()


def test_console_sharing_with_chosen_tenants_asks_them(owner_client, tenant, other_tenant, glance, upload):  # noqa: F811
    image_id, _data = upload(name="golden")
    owner_client.post(
        f"/images/{image_id}/sharing/", {"sharing": "tenants", "shared_with": [other_tenant.pk]}
    )
    assert ImageShare.objects.get(image_id=image_id).status == "pending"
