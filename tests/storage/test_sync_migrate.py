"""Sync (standalone to standalone) and migrate (distributed to distributed): RQ jobs on ImageReplica rows."""

import pytest
from django.core.exceptions import ValidationError

from images.models import Image, ImageReplica
from images.services import storage_data
from images.services.storage_data import CopyMode

from .conftest import MiB, random_bytes, read_all


def start(django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        return storage_data.replica_copy_start(**kwargs)


def test_sync_copies_only_the_chunks_the_target_lacks(
    make_standalone, make_image, run_jobs, django_capture_on_commit_callbacks
):
    """Two 64 MiB images sharing 60 MiB; the target holds the first: syncing the second writes ~4 MiB."""
    source, source_backend = make_standalone("source")
    target, target_backend = make_standalone("target")
    base = random_bytes(60 * MiB, 1)
    first = make_image(source, base + random_bytes(4 * MiB, 2))
    second_data = base + random_bytes(4 * MiB, 3)
    second = make_image(source, second_data)
    start(django_capture_on_commit_callbacks, image=first, source=source, target=target, mode=CopyMode.SYNC)
    assert run_jobs() == 0
    used_before = target_backend.usage().used

    replica = start(
        django_capture_on_commit_callbacks, image=second, source=source, target=target, mode=CopyMode.SYNC
    )
    assert replica.state == ImageReplica.State.SYNCING
    assert run_jobs() == 0

    replica.refresh_from_db()
    assert (replica.state, replica.progress, replica.size, replica.error) == ("ready", 100, 64 * MiB, "")
    written = target_backend.usage().used - used_before
    assert 4 * MiB <= written < 4 * MiB + MiB
    assert read_all(target_backend, replica.key) == second_data
    # Sync keeps the source copy.
    assert second.replicas.filter(storage=source, state="ready").exists()


def test_sync_and_migrate_refuse_the_wrong_kinds_and_duplicates(
    make_standalone, make_s3, make_image, django_capture_on_commit_callbacks
):
    source, _ = make_standalone("source")
    target, _ = make_standalone("target")
    bucket, _ = make_s3()
    image = make_image(source, random_bytes(MiB, 4))
    with pytest.raises(ValidationError, match="only between distributed"):
        storage_data.replica_copy_start(image=image, source=source, target=target, mode=CopyMode.MIGRATE)
    with pytest.raises(ValidationError, match="only between standalone"):
        storage_data.replica_copy_start(image=image, source=source, target=bucket, mode=CopyMode.SYNC)
    with pytest.raises(ValidationError, match="same storage"):
        storage_data.replica_copy_start(image=image, source=source, target=source, mode=CopyMode.SYNC)
    start(django_capture_on_commit_callbacks, image=image, source=source, target=target, mode=CopyMode.SYNC)
    with pytest.raises(ValidationError, match="already on"):
        storage_data.replica_copy_start(image=image, source=source, target=target, mode=CopyMode.SYNC)


def test_bulk_sync_reports_each_image(
    make_standalone, make_image, run_jobs, django_capture_on_commit_callbacks
):
    source, _ = make_standalone("source")
    target, target_backend = make_standalone("target")
    images = [make_image(source, random_bytes(MiB, seed)) for seed in range(3)]
    uploading = Image.objects.create(tenant=images[0].tenant, name="half", disk_format="raw", storage=source)
    with django_capture_on_commit_callbacks(execute=True):
        started, refused = storage_data.replicas_copy_start(
            images=[*images, uploading], source=source, target=target, mode=CopyMode.SYNC
        )
    assert len(started) == 3
    assert [(image.name, "Importing" in reason) for image, reason in refused] == [("half", True)]
    assert run_jobs() == 0
    for image in images:
        assert image.replicas.get(storage=target).state == "ready"


def test_a_failed_sync_marks_the_replica_failed_with_the_reason(
    make_standalone, make_image, run_jobs, django_capture_on_commit_callbacks
):
    source, source_backend = make_standalone("source")
    target, target_backend = make_standalone("target")
    image = make_image(source, random_bytes(2 * MiB, 5))
    # Damage the source: its chunk no longer matches its name.
    chunk = next(source_backend.chunks_dir.rglob("*/*"))
    chunk.write_bytes(b"rotten" + chunk.read_bytes()[6:])

    replica = start(
        django_capture_on_commit_callbacks, image=image, source=source, target=target, mode=CopyMode.SYNC
    )
    assert run_jobs() == 0

    replica.refresh_from_db()
    assert replica.state == "failed"
    assert "does not match its name" in replica.error
    assert not target_backend.exists(replica.key)
    assert list(target_backend.chunks_dir.rglob("*/*")) == []


@pytest.mark.parametrize("same_endpoint", [True, False], ids=["server-side-copy", "streamed"])
def test_migrate_moves_the_image_and_leaves_the_source_data_until_a_cleanup(
    make_s3, make_image, run_jobs, django_capture_on_commit_callbacks, s3_endpoint, settings, same_endpoint
):
    source, source_backend = make_s3("old-cluster", concurrency=2)
    endpoint = s3_endpoint if same_endpoint else s3_endpoint.replace("127.0.0.1", "localhost")
    target, target_backend = make_s3("new-cluster", concurrency=2, endpoint_url=endpoint)
    data = random_bytes(20 * MiB + 3, 6)
    image = make_image(source, data)

    replica = start(
        django_capture_on_commit_callbacks, image=image, source=source, target=target, mode=CopyMode.MIGRATE
    )
    assert run_jobs() == 0

    replica.refresh_from_db()
    assert replica.state == "ready" and replica.progress == 100
    assert read_all(target_backend, replica.key) == data
    image.refresh_from_db()
    assert image.storage == target
    assert list(image.replicas.values_list("storage__name", flat=True)) == ["new-cluster"]
    assert source_backend.exists(str(image.pk))  # left until a data cleanup

    settings.STORAGE_CLEANUP_GRACE_HOURS = 0
    report = storage_data.storage_data_cleanup(storage=source)
    assert report.replicas_removed == 1 and report.bytes_freed >= len(data)
    assert not source_backend.exists(str(image.pk))
    assert target_backend.exists(str(image.pk))


def test_a_copy_whose_job_was_lost_fails_after_reconcile_and_a_queued_one_waits(
    make_standalone, make_image, rq_redis, django_capture_on_commit_callbacks
):
    """A sync whose job vanished (Redis lost it, or its worker died) would say "syncing" for ever."""
    from rq.job import Job

    from images.services.reconcile import reconcile

    source, _ = make_standalone("source")
    target, _ = make_standalone("target")
    lost = make_image(source, random_bytes(MiB, 4))
    waiting = make_image(source, random_bytes(MiB, 5))
    lost_replica = start(
        django_capture_on_commit_callbacks, image=lost, source=source, target=target, mode="sync"
    )
    waiting_replica = start(
        django_capture_on_commit_callbacks, image=waiting, source=source, target=target, mode="sync"
    )
    Job.fetch(storage_data.replica_copy_job_id(lost_replica.pk), connection=rq_redis).delete()

    report = reconcile()

    assert report.copies_failed == [str(lost_replica.pk)]
    lost_replica.refresh_from_db()
    assert lost_replica.state == ImageReplica.State.FAILED
    assert "stopped unexpectedly" in lost_replica.error and "target" in lost_replica.error
    waiting_replica.refresh_from_db()
    assert waiting_replica.state == ImageReplica.State.SYNCING  # its job is still queued
    # The source copy is untouched, so the sync can simply be started again.
    assert lost.replicas.get(storage=source).state == ImageReplica.State.READY
    assert not reconcile().copies_failed
