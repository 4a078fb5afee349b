"""The quota with a recycle bin (deleted images leave the image count at once, their size counts until
expunged) and the bin's API."""

import pytest

from images.models import Image
from images.services import image_delete
from recyclebin.services import RestoreRefused, image_restore
from tenants.services import api_token_create, quota_check, quota_update, tenant_usage


def test_the_reported_dead_end_now_imports(tenant, owner, make_image, rq_redis):
    """Quota 10 images, 8 visible, 4 deleted: an import used to be refused "12 exist"."""
    quota_update(tenant=tenant, max_images=10, max_bytes=None)
    images = [make_image(tenant) for _ in range(12)]
    for image in images[:4]:
        image_delete(image=image, actor=owner)
    assert tenant_usage(tenant=tenant).images == 8
    quota_check(tenant=tenant, add_images=1)  # no QuotaExceeded


def test_size_counts_until_expunged(tenant, owner, make_image, run_jobs, django_capture_on_commit_callbacks):
    quota_update(tenant=tenant, max_images=None, max_bytes=10 * 1024**2)
    image = make_image(tenant, size=8 * 1024**2)
    image_delete(image=image, actor=owner)
    assert tenant_usage(tenant=tenant).bytes == 8 * 1024**2
    with pytest.raises(Exception) as refused:
        quota_check(tenant=tenant, add_bytes=4 * 1024**2)
    assert "recycle bin count until they are destroyed" in str(refused.value)
    from recyclebin.services import image_expunge

    with django_capture_on_commit_callbacks(execute=True):
        image_expunge(image=Image.objects.get(pk=image.pk), actor=owner)
    assert run_jobs(["maintenance"]) == 0
    assert tenant_usage(tenant=tenant).bytes == 0
    quota_check(tenant=tenant, add_bytes=4 * 1024**2)


def test_a_restore_past_the_image_count_is_refused_naming_the_quota(tenant, owner, make_image, rq_redis):
    quota_update(tenant=tenant, max_images=2, max_bytes=None)
    first = image_delete(image=make_image(tenant, name="first"), actor=owner)
    make_image(tenant)
    make_image(tenant)
    with pytest.raises(RestoreRefused) as refused:
        image_restore(image=first, actor=owner)
    assert "image quota allows 2 images and 2 exist" in refused.value.messages[0]
    first.refresh_from_db()
    assert first.status == "deleted"


def test_batch_restore_restores_as_many_as_the_quota_allows(
    owner_client, tenant, owner, make_image, rq_redis
):
    quota_update(tenant=tenant, max_images=3, max_bytes=None)
    binned = [image_delete(image=make_image(tenant, name=f"b{n}"), actor=owner) for n in range(3)]
    make_image(tenant)
    response = owner_client.post(
        "/recycle-bin/batch/restore/", {"ids": [i.pk for i in binned]}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.count('data-done="yes"') == 2 and body.count('data-done="no"') == 1
    assert "image quota allows 3 images" in body
    assert tenant_usage(tenant=tenant).images == 3


@pytest.fixture
def api(client, owner):
    _token, key = api_token_create(user=owner)
    return lambda method, url, **kw: getattr(client, method)(url, HTTP_AUTHORIZATION=f"Token {key}", **kw)


def test_recycle_bin_api(
    api, tenant, other_tenant, owner, make_image, run_jobs, django_capture_on_commit_callbacks
):
    win = image_delete(image=make_image(tenant, name="win", os_type="windows"), actor=owner)
    lin = image_delete(image=make_image(tenant, name="lin", os_type="linux"), actor=owner)
    make_image(tenant, name="live")
    image_delete(image=make_image(other_tenant, name="theirs"), actor=None)
    body = api("get", "/api/v1/recycle-bin/").json()
    assert body["count"] == 2 and {r["name"] for r in body["results"]} == {"win", "lin"}
    assert all(r["status"] == "deleted" and r["purge_after"] and r["deleted_at"] for r in body["results"])
    assert [r["name"] for r in api("get", "/api/v1/recycle-bin/?os_type=windows").json()["results"]] == [
        "win"
    ]
    assert api("get", "/api/v1/recycle-bin/?os_type=plan9").status_code == 400
    # Restore: back to available; restoring again is a conflict.
    response = api("post", f"/api/v1/images/{lin.pk}/restore")
    assert response.status_code == 200 and response.json()["status"] == "available"
    assert api("post", f"/api/v1/images/{lin.pk}/restore").status_code == 404  # no longer in the bin
    # Expunge: 202 with `deleting`, then the detail is a 404.
    with django_capture_on_commit_callbacks(execute=True):
        response = api("post", f"/api/v1/images/{win.pk}/expunge")
    assert response.status_code == 202 and response.json()["status"] == "deleting"
    assert api("get", f"/api/v1/images/{win.pk}/").json()["status"] == "deleting"
    assert api("post", f"/api/v1/images/{win.pk}/expunge").status_code == 409
    assert run_jobs(["maintenance"]) == 0
    assert api("get", f"/api/v1/images/{win.pk}/").status_code == 404


def test_restore_over_quota_is_a_409_naming_it(api, tenant, owner, make_image, rq_redis):
    quota_update(tenant=tenant, max_images=1, max_bytes=None)
    binned = image_delete(image=make_image(tenant), actor=owner)
    make_image(tenant)
    response = api("post", f"/api/v1/images/{binned.pk}/restore")
    assert response.status_code == 409 and response.json()["code"] == "quota_images"
    assert "quota allows 1 image and 1 exist" in response.json()["detail"]
