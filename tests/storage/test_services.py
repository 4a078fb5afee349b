"""Creating, configuring, reconnecting and deleting storages; what tenants may choose."""

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from storage import selectors, services
from storage.models import ImageStorage

from .conftest import MiB, random_bytes


@pytest.mark.django_db
def test_standalone_storage_is_created_with_its_directory(tmp_path):
    storage = services.storage_create(
        kind="standalone", name="fast", mount_path=str(tmp_path / "new" / "dir")
    )
    assert storage.state == ImageStorage.State.CONNECTED
    assert (tmp_path / "new" / "dir" / "chunks").is_dir()
    assert storage.reserved_bytes == 1024**3
    assert (storage.upload_concurrency, storage.download_concurrency) == (1, 1)


@pytest.mark.parametrize("path", ["/", "/proc/images", "/usr/bin", "relative"])
@pytest.mark.django_db
def test_system_directories_are_refused_next_to_the_field(path):
    with pytest.raises(ValidationError) as caught:
        services.storage_create(kind="standalone", name="bad", mount_path=path)
    assert "mount_path" in caught.value.message_dict
    assert not ImageStorage.objects.exists()


@pytest.mark.django_db
def test_a_mount_path_that_fails_the_write_test_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationError) as caught:
        services.storage_create(kind="standalone", name="bad", mount_path=str(tmp_path / "file" / "sub"))
    assert "Not a directory" in caught.value.message_dict["mount_path"][0]
    assert not ImageStorage.objects.exists()


@pytest.mark.django_db
def test_concurrency_outside_1_to_16_is_refused(tmp_path):
    with pytest.raises(ValidationError) as caught:
        services.storage_create(
            kind="standalone", name="x", mount_path=str(tmp_path / "s"), upload_concurrency=17
        )
    assert "upload_concurrency" in caught.value.message_dict


@pytest.mark.django_db
def test_default_storage_is_created_once(settings):
    first = services.storage_create_default()
    second = services.storage_create_default()
    assert first.pk == second.pk
    assert first.name == "local" and first.mount_path == str(settings.STORAGE_ROOT)
    assert ImageStorage.objects.count() == 1


@pytest.mark.django_db
def test_distributed_storage_creates_its_bucket_and_keeps_the_secret_encrypted(s3_endpoint):
    storage = services.storage_create(
        kind="distributed",
        name="ceph",
        endpoint_url=s3_endpoint,
        bucket="created-by-console",
        access_key="AK",
        secret_key="very-secret",
    )
    assert storage.state == ImageStorage.State.CONNECTED, storage.state_reason
    assert "very-secret" not in storage.secret_key_encrypted
    assert storage.get_secret_key() == "very-secret"
    from storage.backends import get_backend

    get_backend(storage).client.head_bucket(Bucket="created-by-console")


@pytest.mark.django_db
def test_unreachable_distributed_storage_is_saved_disconnected_with_the_reason_then_reconnected(s3_endpoint):
    storage = services.storage_create(
        kind="distributed",
        name="ceph",
        endpoint_url="http://127.0.0.1:9",
        bucket="later",
        access_key="AK",
        secret_key="s",
    )
    assert storage.state == ImageStorage.State.DISCONNECTED
    assert "Cannot use bucket" in storage.state_reason
    assert storage not in selectors.storage_choices_for_import()

    services.storage_modify_configuration(storage=storage, endpoint_url=s3_endpoint)
    storage.refresh_from_db()
    assert storage.state == ImageStorage.State.CONNECTED
    assert storage in selectors.storage_choices_for_import()


@pytest.mark.django_db
def test_distributed_storage_needs_its_settings():
    with pytest.raises(ValidationError) as caught:
        services.storage_create(kind="distributed", name="s3", bucket="Bad_Bucket", secret_key="s")
    assert {"endpoint_url", "bucket", "access_key"} <= set(caught.value.message_dict)


@pytest.mark.django_db
def test_update_password_takes_effect_on_reconnect(make_s3):
    storage, _backend = make_s3()
    services.storage_update_password(storage=storage, secret_key="new-secret")
    storage.refresh_from_db()
    assert storage.get_secret_key() == "new-secret"
    services.storage_reconnect(storage=storage)
    assert storage.state == ImageStorage.State.CONNECTED


def test_reconnect_records_why_a_standalone_storage_is_unusable(make_standalone, tmp_path):
    storage, _backend = make_standalone()
    services.storage_reconnect(storage=storage)
    assert storage.state == ImageStorage.State.CONNECTED
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the directory should be")
    ImageStorage.objects.filter(pk=storage.pk).update(mount_path=str(blocker / "x"))
    storage.refresh_from_db()
    services.storage_reconnect(storage=storage)
    storage.refresh_from_db()
    assert storage.state == ImageStorage.State.DISCONNECTED
    assert "Not a directory" in storage.state_reason


def test_delete_is_refused_while_images_are_stored_and_names_them(make_standalone, make_image):
    storage, _backend = make_standalone()
    make_image(storage, random_bytes(MiB, 1), name="ubuntu-24.04")
    make_image(storage, random_bytes(MiB, 2), name="centos-7")

    with pytest.raises(ValidationError) as caught:
        services.storage_delete(storage=storage)
    assert "“centos-7”, “ubuntu-24.04”" in caught.value.messages[0]
    assert ImageStorage.objects.filter(pk=storage.pk).exists()

    empty, _ = make_standalone()
    services.storage_delete(storage=empty)
    assert not ImageStorage.objects.filter(pk=empty.pk).exists()


def test_mount_path_cannot_move_away_from_stored_images(make_standalone, make_image, tmp_path):
    storage, _backend = make_standalone()
    make_image(storage, random_bytes(MiB, 3))
    with pytest.raises(ValidationError) as caught:
        services.storage_modify_configuration(storage=storage, mount_path=str(tmp_path / "elsewhere"))
    assert "mount_path" in caught.value.message_dict
    services.storage_modify_configuration(storage=storage, reserved_bytes=2 * MiB, upload_concurrency=8)
    storage.refresh_from_db()
    assert (storage.reserved_bytes, storage.upload_concurrency) == (2 * MiB, 8)


def test_tenants_choose_among_enabled_connected_storages(make_standalone):
    usable, _ = make_standalone("usable")
    disabled, _ = make_standalone("disabled", enabled=False)
    down, _ = make_standalone("down", state=ImageStorage.State.DISCONNECTED)
    assert list(selectors.storage_choices_for_import()) == [usable]
    assert set(selectors.storage_list_for_tenant()) == {usable, down}
    assert disabled not in selectors.storage_list_for_tenant()


def test_an_unreachable_storage_is_asked_for_its_usage_once_per_cache_period(make_standalone, tmp_path):
    """A page showing usage does not wait for an unreachable storage on every view (a storage server's
    connection timeout); `fresh` asks again."""
    from storage.selectors import forget_usage, storage_usage

    storage, _backend = make_standalone()
    forget_usage(storage=storage)
    moved = tmp_path / "away"
    Path(storage.mount_path).mkdir(parents=True, exist_ok=True)
    Path(storage.mount_path).rename(moved)
    assert storage_usage(storage=storage) is None
    moved.rename(storage.mount_path)  # reachable again, but the failure is remembered briefly
    assert storage_usage(storage=storage) is None
    assert storage_usage(storage=storage, fresh=True) is not None
    assert storage_usage(storage=storage) is not None
