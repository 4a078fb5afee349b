"""The storage admin: add with the kind first, edit, configure, password, reconnect, usage, cleanup,
sync and migrate, delete and bulk delete."""

import pytest
from django.urls import reverse

from images.models import ImageReplica
from storage.models import ImageStorage
from tenants.models import OperationLog

from .conftest import MiB, random_bytes

ADD = reverse("admin:storage_imagestorage_add")
CHANGELIST = reverse("admin:storage_imagestorage_changelist")


def url(name, storage):
    return reverse(f"admin:storage_imagestorage_{name}", args=[storage.pk])


def standalone_form(tmp_path, **overrides):
    data = {
        "name": "fast-disk",
        "description": "NVMe",
        "data_center": "dc1",
        "mount_path": str(tmp_path / "images"),
        "reserved_bytes": "2",
        "upload_concurrency": "4",
        "download_concurrency": "2",
        "target_format": "",
    }
    data.update(overrides)
    return data


def test_add_asks_for_the_kind_first(admin_client):
    response = admin_client.get(ADD)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="?kind=standalone"' in body and 'href="?kind=distributed"' in body
    assert "mount_path" not in body


# The server kind's is its fourth step (test_server.py).
@pytest.mark.parametrize("kind", ["standalone", "distributed"])
def test_add_form_offers_one_gib_reserved(admin_client, kind):
    body = admin_client.get(ADD + f"?kind={kind}").content.decode()
    assert 'name="reserved_bytes" value="1.00"' in body


def test_add_standalone(admin_client, tmp_path):
    assert 'name="mount_path"' in admin_client.get(ADD + "?kind=standalone").content.decode()
    response = admin_client.post(ADD + "?kind=standalone", standalone_form(tmp_path))
    storage = ImageStorage.objects.get(name="fast-disk")
    assert response.status_code == 302 and response["Location"] == url("change", storage)
    assert (storage.kind, storage.reserved_bytes, storage.upload_concurrency) == (
        "standalone",
        2 * 1024**3,
        4,
    )
    assert storage.state == "connected"
    assert (tmp_path / "images" / "manifests").is_dir()
    assert OperationLog.objects.filter(action="storage.create", target_name="fast-disk").exists()


@pytest.mark.parametrize(
    "overrides, field, text",
    [
        ({"mount_path": "/proc/images"}, "mount_path", "system directory /proc"),
        ({"mount_path": "images"}, "mount_path", "absolute path"),
        ({"upload_concurrency": "17"}, "upload_concurrency", "16"),
    ],
)
def test_add_standalone_shows_errors_next_to_the_field(admin_client, tmp_path, overrides, field, text):
    response = admin_client.post(ADD + "?kind=standalone", standalone_form(tmp_path, **overrides))
    assert response.status_code == 200
    assert text in str(response.context["form"].errors[field])
    assert not ImageStorage.objects.exists()


def test_add_distributed_keeps_the_secret_out_of_every_page(admin_client, s3_endpoint):
    data = {
        "name": "rgw",
        "endpoint_url": s3_endpoint,
        "region": "us-east-1",
        "bucket": "rgw-images",
        "access_key": "AKIA",
        "secret_key": "s3cr3t-value",
        "capacity_bytes": "100",
        "reserved_bytes": "1",
        "upload_concurrency": "4",
        "download_concurrency": "4",
    }
    response = admin_client.post(ADD + "?kind=distributed", data)
    storage = ImageStorage.objects.get(name="rgw")
    assert response.status_code == 302
    assert storage.state == "connected", storage.state_reason
    assert storage.capacity_bytes == 100 * 1024**3
    for page in ("change", "configure", "password", "usage"):
        body = admin_client.get(url(page, storage)).content.decode()
        assert "s3cr3t-value" not in body and storage.secret_key_encrypted not in body


def test_edit_name_and_description(admin_client, make_standalone):
    storage, _ = make_standalone("old-name")
    response = admin_client.post(
        url("change", storage),
        {"name": "new-name", "description": "moved", "data_center": "dc2", "enabled": "on"},
    )
    assert response.status_code == 302
    storage.refresh_from_db()
    assert (storage.name, storage.description, storage.data_center) == ("new-name", "moved", "dc2")
    assert OperationLog.objects.filter(action="storage.update").exists()


def test_modify_configuration(admin_client, make_standalone):
    storage, _ = make_standalone()
    form = admin_client.get(url("configure", storage)).context["form"]
    assert form.initial["mount_path"] == storage.mount_path
    data = {
        "mount_path": storage.mount_path,
        "reserved_bytes": "0.5",
        "upload_concurrency": "8",
        "download_concurrency": "8",
    }
    assert admin_client.post(url("configure", storage), data).status_code == 302
    storage.refresh_from_db()
    assert (storage.reserved_bytes, storage.upload_concurrency) == (512 * MiB, 8)
    response = admin_client.post(url("configure", storage), {**data, "mount_path": "/sys/x"})
    assert "mount_path" in response.context["form"].errors


def test_update_password_then_reconnect(admin_client, make_s3):
    storage, _ = make_s3()
    response = admin_client.post(
        url("password", storage), {"secret_key": "rotated", "confirm": "rotated"}, follow=True
    )
    assert "Reconnect the storage" in response.content.decode()
    storage.refresh_from_db()
    assert storage.get_secret_key() == "rotated"
    mismatch = admin_client.post(url("password", storage), {"secret_key": "a", "confirm": "b"})
    assert "differ" in mismatch.content.decode()
    response = admin_client.post(url("reconnect", storage), follow=True)
    assert "is connected" in response.content.decode()


def test_reconnect_shows_the_reason_it_fails(admin_client, make_s3):
    storage, _ = make_s3(connect=False)
    ImageStorage.objects.filter(pk=storage.pk).update(endpoint_url="http://127.0.0.1:9")
    response = admin_client.post(url("reconnect", storage), follow=True)
    storage.refresh_from_db()
    assert storage.state == "disconnected"
    assert "is disconnected" in response.content.decode()
    assert admin_client.get(url("reconnect", storage)).status_code == 405


def test_usage_page_and_data_cleanup(
    admin_client, make_standalone, make_image, run_jobs, django_capture_on_commit_callbacks
):
    storage, _ = make_standalone()
    make_image(storage, random_bytes(4 * MiB, 1))
    body = admin_client.get(url("usage", storage)).content.decode().replace("\xa0", " ")
    assert "4.0 MB" in body and "Deduplication ratio" in body
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("cleanup", storage))
    assert response.status_code == 302
    assert run_jobs() == 0
    storage.refresh_from_db()
    assert storage.last_cleanup_at is not None
    assert "freed" in admin_client.get(url("usage", storage)).content.decode()


def test_delete_is_refused_naming_the_images(admin_client, make_standalone, make_image):
    storage, _ = make_standalone()
    make_image(storage, random_bytes(MiB, 2), name="debian-12")
    page = admin_client.get(url("delete", storage)).content.decode()
    assert "holds image “debian-12”" in page
    admin_client.post(url("delete", storage), {"post": "yes"})
    assert ImageStorage.objects.filter(pk=storage.pk).exists()


def test_bulk_delete(admin_client, make_standalone, make_image):
    empty_one, _ = make_standalone("empty-one")
    empty_two, _ = make_standalone("empty-two")
    full, _ = make_standalone("full")
    make_image(full, random_bytes(MiB, 3), name="rocky-9")
    refused = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [empty_one.pk, full.pk]}
    ).content.decode()
    assert "holds image “rocky-9”" in refused
    confirm = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [empty_one.pk, empty_two.pk]}
    )
    assert confirm.status_code == 200
    admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [empty_one.pk, empty_two.pk], "post": "yes"},
    )
    assert list(ImageStorage.objects.values_list("name", flat=True)) == ["full"]


def test_bulk_reconnect_and_cleanup_actions(
    admin_client, make_standalone, run_jobs, django_capture_on_commit_callbacks
):
    one, _ = make_standalone()
    two, _ = make_standalone()
    response = admin_client.post(
        CHANGELIST, {"action": "reconnect_selected", "_selected_action": [one.pk, two.pk]}, follow=True
    )
    assert "2 storages are connected" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(CHANGELIST, {"action": "cleanup_selected", "_selected_action": [one.pk, two.pk]})
    assert run_jobs() == 0
    assert ImageStorage.objects.filter(last_cleanup_at__isnull=False).count() == 2


def test_synchronise_images_in_bulk(
    admin_client, make_standalone, make_image, run_jobs, django_capture_on_commit_callbacks
):
    source, _ = make_standalone("source")
    target, _ = make_standalone("target")
    images = [make_image(source, random_bytes(MiB, seed)) for seed in (4, 5)]
    page = admin_client.get(url("images", source)).content.decode()
    assert images[0].name in page and "Synchronise" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url("images", source),
            {"images": [image.pk for image in images], "target": target.pk},
            follow=True,
        )
    assert "2 images are being copied" in response.content.decode()
    assert run_jobs() == 0
    assert ImageReplica.objects.filter(storage=target, state="ready").count() == 2
    assert "Ready" in admin_client.get(url("images", source)).content.decode()


def test_admin_pages_need_staff(client, owner_client, make_standalone):
    storage, _ = make_standalone()
    for page in ("configure", "usage", "images", "password"):
        assert owner_client.get(url(page, storage)).status_code == 302  # to the admin login
