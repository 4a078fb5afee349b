"""Expunge and retention expiry through a real Redis, real RQ workers and RQ's scheduler, on real storages:
the data really goes (standalone: the next data cleanup frees exactly the image's unshared chunks; S3: the
objects), a job lost with Redis is caught by the sweep, and a worker killed mid-expunge is finished by the
reconciler."""

import os
import signal
import time
from pathlib import Path

import django_rq
import pytest
from django.db import connection
from django.utils import timezone

from images import hooks
from images.models import Image, ImageReplica
from images.services import image_delete
from images.services.reconcile import reconcile
from images.services.storage_data import storage_data_cleanup
from recyclebin.services import image_expunge, image_expunge_run
from storage.backends import get_backend
from tenants.models import OperationLog

from ..images.imports.conftest import send_file

MiB = 1024 * 1024
RETENTION_DAYS = 0.00005  # 4.32 seconds


def wait_for(predicate, *, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def work(*, scheduler=False, queues=("imports", "maintenance")):
    """One pass of a real RQ worker (and, when asked, of RQ's scheduler) over the queues."""
    from rq import SimpleWorker

    rq_queues = [django_rq.get_queue(name) for name in queues]
    SimpleWorker(rq_queues, connection=rq_queues[0].connection).work(burst=True, with_scheduler=scheduler)


def store(start_import, storage, data: bytes, tmp_path: Path, name: str) -> Image:
    path = tmp_path / f"{name}.raw"
    path.write_bytes(data)
    image = start_import(storage, "raw", name=name)
    send_file(image, path)
    work(queues=("imports",))
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    return image


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


@pytest.fixture
def two_images_sharing_chunks(standalone, start_import, tmp_path, rq_redis, settings):
    """`base` (three 4 MiB chunks) and `child`, which shares its first two chunks: expunging `base` may
    free only its third chunk."""
    settings.STORAGE_CLEANUP_GRACE_HOURS = 0
    base_data = os.urandom(12 * MiB)
    base = store(start_import, standalone, base_data, tmp_path, "base")
    child = store(start_import, standalone, base_data[: 8 * MiB] + os.urandom(4 * MiB), tmp_path, "child")
    backend = get_backend(standalone)
    own = set(backend.load_manifest(base.replicas.get().key)["chunks"])
    shared = set(backend.load_manifest(child.replicas.get().key)["chunks"])
    unshared = own - shared
    assert len(unshared) == 1 and len(own & shared) == 2
    unshared_bytes = sum(backend.chunk_path(d).stat().st_blocks * 512 for d in unshared)
    return base, child, unshared_bytes


@pytest.mark.django_db(transaction=True)
def test_expiry_expunges_on_time_and_cleanup_frees_exactly_the_unshared_chunks(
    two_images_sharing_chunks, standalone, owner, set_policy
):
    base, child, unshared_bytes = two_images_sharing_chunks
    set_policy("delayed", days=RETENTION_DAYS)
    base = image_delete(image=base, actor=owner)
    assert base.purge_after is not None
    # RQ's scheduler holds the expiry until its time: a worker before then does nothing.
    assert django_rq.get_queue("maintenance").scheduled_job_registry.count == 1
    work(scheduler=True)
    assert Image.objects.get(pk=base.pk).status == "deleted"

    def expunged():
        work(scheduler=True)
        return not Image.objects.filter(pk=base.pk).exists()

    wait_for(expunged, timeout=20, what="the expiry")
    log = OperationLog.objects.get(action="image.expunge", target_id=str(base.pk))
    assert log.created_at >= base.purge_after
    assert log.created_at - base.purge_after < timezone.timedelta(seconds=5)
    assert OperationLog.objects.filter(action="image.expire", target_id=str(base.pk)).exists()

    # The data cleanup afterwards frees exactly the chunk no other image uses (measured on disk).
    root = Path(standalone.mount_path)
    before = disk_bytes(root)
    report = storage_data_cleanup(storage=standalone)
    assert before - disk_bytes(root) == unshared_bytes == report.bytes_freed
    # The image that shared chunks is intact.
    replica = child.replicas.get()
    assert len(b"".join(get_backend(standalone).read_range(replica.key))) == 12 * MiB


@pytest.mark.django_db(transaction=True)
def test_redis_flushed_after_the_delete_the_sweep_still_expunges(
    two_images_sharing_chunks, standalone, owner, set_policy, rq_redis
):
    base, _child, unshared_bytes = two_images_sharing_chunks
    set_policy("delayed", days=RETENTION_DAYS)
    base = image_delete(image=base, actor=owner)
    rq_redis.flushdb()  # the scheduled expiry is lost
    wait_for(lambda: timezone.now() > base.purge_after, timeout=10, what="the retention to pass")
    work(scheduler=True)
    assert Image.objects.get(pk=base.pk).status == "deleted"  # nothing left in Redis to run it
    from recyclebin.jobs import recyclebin_sweep_job

    django_rq.get_queue("maintenance").enqueue(recyclebin_sweep_job)
    work()  # the sweep starts the expunge...
    work()  # ...and its job runs
    assert not Image.objects.filter(pk=base.pk).exists()
    assert not ImageReplica.objects.filter(image_id=base.pk).exists()
    # As after an expiry on time: the data cleanup frees exactly the unshared chunk (measured on disk).
    root = Path(standalone.mount_path)
    before = disk_bytes(root)
    assert storage_data_cleanup(storage=standalone).bytes_freed == unshared_bytes == before - disk_bytes(root)


def test_the_sweep_is_a_periodic_job(rq_redis):
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=rq_redis)
    scheduler.load_config_from_file("recyclebin.cron")
    jobs = {job.func.__name__: job for job in scheduler.get_jobs()}
    assert jobs["recyclebin_sweep_job"].interval == 60
    assert jobs["recyclebin_sweep_job"].queue_name == "maintenance"


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_expunge_leaves_deleting_and_reconcile_finishes_it(
    two_images_sharing_chunks, standalone, owner, rq_redis, tmp_path
):
    base, _child, _unshared = two_images_sharing_chunks
    reached, hold = tmp_path / "reached", tmp_path / "hold"
    hold.touch()

    def blocking_hook(*, image_id, tenant_id):
        # Only the worker that is to be killed waits here (the file `hold` exists while it should).
        reached.touch()
        while hold.exists():
            time.sleep(0.05)

    base_key = base.replicas.get().key
    hooks.register_before_expunge(blocking_hook)
    try:
        image_delete(image=base, actor=owner)
        from django.db import transaction

        with transaction.atomic():
            image_expunge(image=Image.objects.get(pk=base.pk), actor=owner)
        job_id = Image.objects.get(pk=base.pk).job_id
        assert job_id
        if connection.vendor == "postgresql":
            connection.close()  # the child opens its own connection
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                work(queues=("maintenance",))
            finally:
                os._exit(0)
        try:
            wait_for(reached.exists, what="the expunge to start")
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        hold.unlink()
        image = Image.objects.get(pk=base.pk)
        assert image.status == "deleting"  # nothing noticed yet
        report = reconcile()
        assert str(base.pk) in report.other["expunge resumed (job lost)"]
        assert Image.objects.get(pk=base.pk).job_id != job_id
        work(queues=("maintenance",))
        assert not Image.objects.filter(pk=base.pk).exists()
        assert not get_backend(standalone).exists(base_key)
        assert not reconcile().other["expunge resumed (job lost)"]
    finally:
        hooks._before_expunge.remove(blocking_hook)


@pytest.mark.django_db(transaction=True)
def test_expunge_deletes_the_s3_objects_and_runs_the_before_expunge_hooks(
    distributed, start_import, tmp_path, owner, rq_redis
):
    image = store(start_import, distributed, os.urandom(6 * MiB), tmp_path, "s3-image")
    key = image.replicas.get().key
    backend = get_backend(distributed)
    assert backend.exists(key)
    seen = []

    def hook(*, image_id, tenant_id):
        seen.append((image_id, tenant_id))

    hooks.register_before_expunge(hook)
    try:
        image_delete(image=image, actor=owner)
        image_expunge(image=Image.objects.get(pk=image.pk), actor=owner)
        work(queues=("maintenance",))
    finally:
        hooks._before_expunge.remove(hook)
    assert seen == [(image.pk, image.tenant_id)]
    assert not backend.exists(key)
    listed = backend.client.list_objects_v2(Bucket=distributed.bucket).get("KeyCount", 0)
    assert listed == 0
    assert not Image.objects.filter(pk=image.pk).exists()


def test_expunge_is_idempotent(tenant, owner, make_image, rq_redis):
    image = make_image(tenant)
    image_delete(image=image, actor=owner)
    image_expunge(image=Image.objects.get(pk=image.pk), actor=owner)
    assert image_expunge_run(image_id=image.pk) is True
    assert image_expunge_run(image_id=image.pk) is False
    assert OperationLog.objects.filter(action="image.expunge", result="success").count() == 1


def test_an_unreachable_storage_leaves_deleting_with_the_reason_and_it_is_tried_again(
    tenant, owner, make_image, rq_redis, django_capture_on_commit_callbacks
):
    from storage.backends import StorageError
    from storage.models import ImageStorage

    dead = ImageStorage(
        name="dead-s3",
        kind=ImageStorage.Kind.DISTRIBUTED,
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing answers
        region="us-east-1",
        bucket="nowhere",
        access_key="k",
        reserved_bytes=0,
    )
    dead.set_secret_key("s")
    dead.save()
    image = make_image(tenant)
    ImageReplica.objects.create(image=image, storage=dead, key=str(image.pk), state="ready", size=1)
    image_delete(image=image, actor=owner)
    with django_capture_on_commit_callbacks(execute=True):
        image_expunge(image=Image.objects.get(pk=image.pk), actor=owner)
    with pytest.raises(StorageError):
        image_expunge_run(image_id=image.pk)
    image.refresh_from_db()
    assert image.status == "deleting" and "could not be removed from dead-s3" in image.error
    assert ImageReplica.objects.filter(image=image).exists()
    # Its job ran and failed: the reconciler enqueues the expunge again.
    from recyclebin.services import expunges_reconcile

    failed_job = django_rq.get_queue("maintenance").fetch_job(image.job_id)
    failed_job.set_status("failed")
    assert expunges_reconcile().resumed == [str(image.pk)]
