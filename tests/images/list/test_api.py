"""The image API's list, PATCH, DELETE and Excel export: the console's filters, scope and services."""

import io

import openpyxl
import pytest

from images.models import Image
from tenants import services
from tenants.models import OperationLog


@pytest.fixture
def auth(db):
    def make(user):
        _token, key = services.api_token_create(user=user)
        return {"HTTP_AUTHORIZATION": f"Token {key}"}

    return make


def test_list_is_paginated_and_filtered_like_the_console(
    client, owner, tenant, other_tenant, make_image, auth
):
    for n in range(7):
        make_image(tenant, name=f"linux-{n}", os_type="linux")
    make_image(tenant, name="win", os_type="windows")
    make_image(other_tenant, name="theirs")
    make_image(other_tenant, name="shared", sharing="global")
    headers = auth(owner)
    body = client.get("/api/v1/images/?page_size=3&ordering=name", **headers).json()
    assert body["count"] == 9
    assert [row["name"] for row in body["results"]] == ["linux-0", "linux-1", "linux-2"]
    assert body["next"].endswith("page=2&page_size=3&ordering=name") or "page=2" in body["next"]
    assert body["previous"] is None
    body = client.get("/api/v1/images/?os_type=windows", **headers).json()
    assert [row["name"] for row in body["results"]] == ["win"]
    shared = client.get("/api/v1/images/?q=shared", **headers).json()["results"][0]
    assert shared["read_only"] is True and shared["shared_with"] == []
    row = client.get("/api/v1/images/?q=win", **headers).json()["results"][0]
    for field in [
        "id",
        "name",
        "status",
        "stage",
        "progress",
        "error",
        "size",
        "virtual_size",
        "md5",
        "sha256",
        "disk_format",
        "kind",
        "enabled",
    ]:
        assert field in row, field


def test_bad_filters_and_pages_are_400_or_404_with_a_reason(client, owner, tenant, make_image, auth):
    make_image(tenant)
    headers = auth(owner)
    response = client.get("/api/v1/images/?status=melted&ordering=secret", **headers)
    assert response.status_code == 400
    assert set(response.json()) == {"status", "ordering"}
    response = client.get("/api/v1/images/?page=99", **headers)
    assert response.status_code == 404 and "Invalid page" in response.json()["detail"]


def test_detail_of_another_tenants_image_is_404(client, owner, other_tenant, make_image, auth):
    theirs = make_image(other_tenant)
    headers = auth(owner)
    for method in ("get", "patch", "delete"):
        assert getattr(client, method)(f"/api/v1/images/{theirs.pk}/", **headers).status_code == 404
    assert client.get("/api/v1/images/not-a-uuid/", **headers).status_code == 404


def test_patch_edits_name_labels_enabled_and_sharing(client, owner, tenant, other_tenant, make_image, auth):
    image = make_image(tenant, name="old")
    response = client.patch(
        f"/api/v1/images/{image.pk}/",
        {
            "name": "new name",
            "description": "remarks",
            "labels": ["web", " web ", "db"],
            "enabled": False,
            "sharing": "tenants",
            "shared_with": [other_tenant.pk],
        },
        content_type="application/json",
        **auth(owner),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["description"], body["labels"], body["enabled"]) == (
        "new name",
        "remarks",
        ["web", "db"],
        False,
    )
    assert (body["sharing"], body["shared_with"]) == ("tenants", [other_tenant.pk])
    actions = set(OperationLog.objects.filter(target_id=str(image.pk)).values_list("action", flat=True))
    assert actions == {"image.update", "image.disable", "image.share"}


def test_patch_errors_say_what_is_wrong_and_change_nothing(client, owner, tenant, make_image, auth):
    image = make_image(tenant, name="keep")
    headers = auth(owner)
    response = client.patch(
        f"/api/v1/images/{image.pk}/",
        {"name": "bad/name", "enabled": False},
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 400 and "name" in response.json()
    response = client.patch(
        f"/api/v1/images/{image.pk}/", {"sharing": "global"}, content_type="application/json", **headers
    )
    assert response.status_code == 403 and "administrator" in response.json()["detail"]
    response = client.patch(f"/api/v1/images/{image.pk}/", {}, content_type="application/json", **headers)
    assert response.status_code == 400
    image.refresh_from_db()
    assert (image.name, image.enabled, image.sharing) == ("keep", True, "private")


def test_viewer_and_shared_images_are_read_only(
    client, subaccount, owner, tenant, other_tenant, make_image, auth
):
    mine = make_image(tenant)
    shared = make_image(other_tenant, sharing="global")
    response = client.patch(
        f"/api/v1/images/{mine.pk}/", {"name": "x"}, content_type="application/json", **auth(subaccount)
    )
    assert response.status_code == 403
    response = client.delete(f"/api/v1/images/{shared.pk}/", **auth(owner))
    assert response.status_code == 403 and "read-only" in response.json()["detail"]
    assert Image.objects.get(pk=shared.pk).status == "available"


def test_delete_into_the_recycle_bin_or_409(client, owner, tenant, make_image, auth):
    ok = make_image(tenant)
    busy = make_image(tenant, status="uploading")
    headers = auth(owner)
    assert client.delete(f"/api/v1/images/{ok.pk}/", **headers).status_code == 204
    ok.refresh_from_db()
    assert ok.status == "deleted" and ok.deleted_by == owner
    response = client.delete(f"/api/v1/images/{busy.pk}/", **headers)
    assert response.status_code == 409 and "only available or failed" in response.json()["detail"]
    # In the recycle bin the detail still answers, with until when it is kept; the list no longer shows it.
    detail = client.get(f"/api/v1/images/{ok.pk}/", **headers).json()
    assert detail["status"] == "deleted" and detail["purge_after"] and detail["deleted_at"]
    assert str(ok.pk) not in client.get("/api/v1/images/", **headers).content.decode()


def test_export_xlsx_honours_the_filters(client, owner, tenant, make_image, auth):
    make_image(tenant, name="linux-a", os_type="linux")
    make_image(tenant, name="win-a", os_type="windows")
    response = client.get("/api/v1/images/export.xlsx?os_type=windows", **auth(owner))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert [row[0] for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)] == ["win-a"]
    bad = client.get("/api/v1/images/export.xlsx?os_type=plan9", **auth(owner))
    assert bad.status_code == 400 and "os_type" in bad.json()
