"""The import API's fixed points: POST /api/v1/images/, PUT .../file, GET .../<id>/, POST .../cancel."""

import hashlib

import pytest

from images.models import Image, ImageReplica
from storage.backends import get_backend
from tenants import services
from tenants.models import Quota

from .conftest import MiB


@pytest.fixture
def auth(db):
    def make(user):
        _token, key = services.api_token_create(user=user)
        return {"HTTP_AUTHORIZATION": f"Token {key}"}

    return make


def create_body(storage, **overrides):
    body = {
        "name": "centos-7.9 (api)",
        "kind": "system",
        "disk_format": "qcow2",
        "os_type": "linux",
        "architecture": "x86_64",
        "boot_mode": "bios",
        "platform": "CentOS",
        "os_version": "7.9",
        "storage": storage.pk,
        "labels": ["web", "prod"],
        "source": "upload",
    }
    body.update(overrides)
    return body


def test_create_then_put_the_file_then_available(
    client, owner, auth, standalone, disks, run_jobs, django_capture_on_commit_callbacks
):
    headers = auth(owner)
    qcow2 = disks.convert(disks.raw(size=4 * MiB), "qcow2")
    data = qcow2.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    response = client.post(
        "/api/v1/images/", create_body(standalone, sha256=sha), content_type="application/json", **headers
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "uploading" and created["stage"] == "queued"
    assert created["labels"] == ["web", "prod"]
    put_url = created["upload"]["put_url"]
    assert put_url == f"/api/v1/images/{created['id']}/file"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.put(put_url, data=data, content_type="application/octet-stream", **headers)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "available"  # made available by the PUT itself: no job queued
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0

    detail = client.get(f"/api/v1/images/{created['id']}/", **headers).json()
    assert detail["status"] == "available", detail["error"]
    assert detail["sha256"] == sha
    assert detail["md5"] == hashlib.md5(data).hexdigest()
    assert detail["size"] == len(data) and detail["virtual_size"] == 4 * MiB


def test_create_reports_every_bad_field(client, owner, auth, standalone):
    body = create_body(standalone, name=" bad/name", architecture="aarch64", os_version="6.5", sha256="xyz")
    response = client.post("/api/v1/images/", body, content_type="application/json", **auth(owner))
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) >= {"name", "boot_mode", "sha256"}
    assert "UEFI" in errors["boot_mode"][0]
    assert not Image.objects.exists()


@pytest.mark.parametrize(
    "os_type, platform, version",
    [("linux", "Ubuntu", "24.04"), ("windows", "Windows", "Windows Server 2022"), ("linux", "Debian", "12")],
)
def test_create_accepts_current_systems(client, owner, auth, standalone, os_type, platform, version):
    body = create_body(standalone, os_type=os_type, platform=platform, os_version=version)
    response = client.post("/api/v1/images/", body, content_type="application/json", **auth(owner))
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["platform"], created["os_version"]) == (platform, version)


def test_platform_and_version_are_optional(client, owner, auth, standalone):
    body = create_body(standalone)
    del body["platform"], body["os_version"]
    response = client.post("/api/v1/images/", body, content_type="application/json", **auth(owner))
    assert response.status_code == 201, response.content
    assert response.json()["platform"] == "" and response.json()["os_version"] == ""


def test_view_only_subaccount_cannot_import(client, subaccount, auth, standalone):
    response = client.post(
        "/api/v1/images/", create_body(standalone), content_type="application/json", **auth(subaccount)
    )
    assert response.status_code == 403
    assert not Image.objects.exists()


def test_another_tenants_image_is_a_404(client, owner, other_tenant, auth, standalone, start_import):
    image = start_import(standalone, "qcow2")
    other = auth(other_tenant.memberships.get().user)
    assert (
        client.put(
            f"/api/v1/images/{image.pk}/file", data=b"x", content_type="application/octet-stream", **other
        ).status_code
        == 404
    )
    assert client.post(f"/api/v1/images/{image.pk}/cancel", **other).status_code == 404
    assert client.get(f"/api/v1/images/{image.pk}/", **other).status_code == 404
    image.refresh_from_db()
    assert image.status == Image.Status.UPLOADING


def test_put_over_the_quota_is_refused_before_any_byte(client, owner, tenant, auth, standalone, start_import):
    Quota.objects.filter(tenant=tenant).update(max_bytes=3 * MiB)
    image = start_import(standalone, "raw")
    response = client.put(
        f"/api/v1/images/{image.pk}/file",
        data=bytes(4 * MiB),
        content_type="application/octet-stream",
        **auth(owner),
    )
    assert response.status_code == 413
    assert "quota" in response.json()["detail"]
    assert not ImageReplica.objects.exists()
    assert get_backend(standalone).usage().logical == 0


def test_put_of_a_file_that_is_not_what_was_claimed(
    client, owner, auth, standalone, disks, start_import, django_capture_on_commit_callbacks, run_jobs
):
    qcow2 = disks.convert(disks.raw(size=4 * MiB), "qcow2")
    image = start_import(standalone, "raw")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.put(
            f"/api/v1/images/{image.pk}/file",
            data=qcow2.read_bytes(),
            content_type="application/octet-stream",
            **auth(owner),
        )
    assert response.status_code == 422
    assert "qcow2" in response.json()["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "qcow2" in image.error
    assert image.size == 0
    assert not ImageReplica.objects.exists()
    assert not get_backend(standalone).exists(str(image.pk))


def test_put_needs_a_length(client, owner, auth, standalone, start_import):
    image = start_import(standalone, "raw")
    response = client.generic(
        "PUT",
        f"/api/v1/images/{image.pk}/file",
        data=b"",
        content_type="application/octet-stream",
        **auth(owner),
    )
    # An empty body has Content-Length 0: an empty raw file is refused as too small to be a disk, or
    # accepted as empty; either way never a server error.
    assert response.status_code < 500


def test_cancel(client, owner, auth, standalone, start_import, django_capture_on_commit_callbacks, run_jobs):
    image = start_import(standalone, "qcow2")
    headers = auth(owner)
    response = client.post(f"/api/v1/images/{image.pk}/cancel", **headers)
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert "cancelled by acme-owner" in response.json()["error"]
    assert client.post(f"/api/v1/images/{image.pk}/cancel", **headers).status_code == 409
