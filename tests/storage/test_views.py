"""The tenants' read-only storage page, with usage drawn as bars."""

import re

from django.urls import reverse

from storage.models import ImageStorage

from .conftest import MiB, random_bytes

LIST = reverse("storage:list")


def test_tenants_see_enabled_storages_with_usage_bars(owner_client, make_standalone, make_image, make_s3):
    storage, backend = make_standalone("fast", description="NVMe pool")
    make_image(storage, random_bytes(4 * MiB, 1))
    make_standalone("retired", enabled=False)
    make_s3("object-store", capacity_bytes=100 * MiB)

    response = owner_client.get(LIST)

    assert response.status_code == 200
    body = response.content.decode().replace("\xa0", " ")
    assert "fast" in body and "NVMe pool" in body and "object-store" in body
    assert "retired" not in body
    assert storage.mount_path not in body  # where the bytes live is for administrators
    assert "4.0 MB used by images" in body
    # The S3 storage holds nothing yet: an empty bar out of its configured 100 MiB.
    assert re.search(r'data-storage="object-store".*?usage-w-0" data-testid="bar-used"', body, re.S)
    assert "100.0 MB" in body


def test_bar_width_follows_usage(owner_client, make_s3, make_image):
    storage, _ = make_s3("half", capacity_bytes=8 * MiB)
    make_image(storage, random_bytes(4 * MiB, 2))
    body = owner_client.get(LIST).content.decode()
    # 4 MiB of objects plus a tiny manifest out of 8 MiB.
    assert 'class="progress usage-w-50" data-testid="bar-used"' in body


def test_read_only_for_every_member_and_empty_state(subaccount_client, other_client, db):
    for client in (subaccount_client, other_client):
        response = client.get(LIST)
        assert response.status_code == 200
        assert 'data-testid="empty-state"' in response.content.decode()
    assert not ImageStorage.objects.exists()


def test_unreachable_storage_says_so(owner_client, make_s3):
    storage, _ = make_s3("gone", connect=False)
    ImageStorage.objects.filter(pk=storage.pk).update(endpoint_url="http://127.0.0.1:9", state="disconnected")
    body = owner_client.get(LIST).content.decode()
    assert "cannot be reached" in body


def test_login_required(client):
    response = client.get(LIST)
    assert response.status_code == 302 and "login" in response["Location"]


def test_api_lists_storages_with_usage(owner, make_standalone, make_image, db):
    from rest_framework.test import APIClient

    from tenants.services import api_token_create

    usable, _ = make_standalone("usable")
    make_image(usable, random_bytes(MiB, 3))
    down, _ = make_standalone("down", state=ImageStorage.State.DISCONNECTED)
    hidden, _ = make_standalone("hidden", enabled=False)
    _token, key = api_token_create(user=owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    rows = {row["name"]: row for row in client.get("/api/v1/storages/").json()}

    assert set(rows) == {"usable", "down"}
    assert rows["usable"]["usable_for_import"] is True and rows["down"]["usable_for_import"] is False
    assert rows["usable"]["usage"]["logical"] == MiB
    assert "mount_path" not in rows["usable"]
    assert client.get(f"/api/v1/storages/{usable.pk}/").json()["name"] == "usable"
    assert client.get(f"/api/v1/storages/{hidden.pk}/").status_code == 404
