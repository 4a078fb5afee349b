"""Bad input to the image API gets a 400 that names the field, and the same rule at create and edit:
labels must be strings, one description limit, and sharing with an unknown tenant says nothing about
which tenant ids exist."""

import pytest

from images.models import Image
from tenants import services

from .test_api import create_body


@pytest.fixture
def headers(owner):
    _token, key = services.api_token_create(user=owner)
    return {"HTTP_AUTHORIZATION": f"Token {key}"}


def create(client, headers, storage, **fields):
    return client.post(
        "/api/v1/images/", create_body(storage, **fields), content_type="application/json", **headers
    )


def patch(client, headers, image, **fields):
    return client.patch(f"/api/v1/images/{image.pk}/", fields, content_type="application/json", **headers)


@pytest.mark.parametrize("labels", [[{"team": "web"}], [["web"]], [7], {"team": "web"}, "web"])
def test_a_label_that_is_not_a_string_is_refused(client, headers, standalone, labels):
    response = create(client, headers, standalone, labels=labels)
    if labels == "web":  # the wizard's comma-separated text
        assert response.status_code == 201
        assert response.json()["labels"] == ["web"]
        return
    assert response.status_code == 400, response.json()
    assert "labels" in response.json()
    assert not Image.objects.exists()


def test_patch_refuses_a_label_that_is_not_a_string(client, headers, tenant):
    image = Image.objects.create(tenant=tenant, name="plain", disk_format="qcow2", status="available")
    response = patch(client, headers, image, labels=[{"team": "web"}])
    assert response.status_code == 400 and "labels" in response.json()
    image.refresh_from_db()
    assert image.labels == []


def test_one_description_limit_for_create_and_edit(client, headers, standalone, tenant):
    limit = Image._meta.get_field("description").max_length
    assert create(client, headers, standalone, description="x" * (limit + 1)).status_code == 400
    created = create(client, headers, standalone, description="x" * limit)
    assert created.status_code == 201
    image = Image.objects.get(pk=created.json()["id"])
    assert patch(client, headers, image, description="y" * (limit + 1)).status_code == 400
    assert patch(client, headers, image, description="y" * limit).status_code == 200


def test_sharing_with_an_unknown_tenant_does_not_say_which_ids_exist(client, headers, tenant, other_tenant):
    image = Image.objects.create(tenant=tenant, name="plain", disk_format="qcow2", status="available")
    other_tenant.is_active = False
    other_tenant.save()
    unknown = patch(client, headers, image, sharing="tenants", shared_with=[999999])
    inactive = patch(client, headers, image, sharing="tenants", shared_with=[other_tenant.pk])
    assert unknown.status_code == inactive.status_code == 400
    message = unknown.json()["shared_with"][0]
    assert "999999" in message and "pk" not in message and "exist" not in message
    assert inactive.json()["shared_with"][0] == message.replace("999999", str(other_tenant.pk))
