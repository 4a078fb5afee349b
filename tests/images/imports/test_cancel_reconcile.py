"""Cancel at any stage, a worker killed mid-import, lost jobs and expired uploads: every import ends,
in `failed` with a message or resumed, and nothing it received stays behind."""

import os
import signal
import threading
import time
from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from images.models import Image, ImageReplica, UploadSession
from images.services import import_cancel
from images.services.imports import REQUEST_JOB_PREFIX
from images.services.progress import heartbeat_of
from images.services.receiving import ImportCancelled, ImportReceiver
from images.services.reconcile import reconcile
from storage.backends import get_backend

from .conftest import MiB, qemu_nbd_serving, send_file


def wait_for(predicate, *, timeout=60.0, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def test_cancel_while_receiving_stops_the_upload_and_removes_what_arrived(
    standalone, start_import, owner, run_jobs, django_capture_on_commit_callbacks, settings
):
    image = start_import(standalone, "raw")
    from images.services import upload_begin

    upload_begin(image_id=image.pk, length=64 * MiB)
    # A first request kept 4 MiB; a second one is sending when the user cancels.
    with ImportReceiver(image_id=image.pk, offset=0) as receiver:
        receiver.write(os.urandom(4 * MiB))
        receiver.commit()
    assert ImageReplica.objects.filter(image=image).exists()
    receiver = ImportReceiver(image_id=image.pk, offset=4 * MiB)
    receiver.write(os.urandom(MiB))
    with django_capture_on_commit_callbacks(execute=True):
        import_cancel(image=image, actor=owner)
    with pytest.raises(ImportCancelled):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            receiver.write(bytes(64 * 1024))
            time.sleep(0.05)
    receiver.abort()
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    assert image.error == "The import was cancelled by acme-owner."
    assert not ImageReplica.objects.filter(image=image).exists()
    assert get_backend(standalone).usage().logical == 0
    assert not (settings.STAGING_ROOT / str(image.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_cancel_during_conversion(standalone, disks, start_import, owner, run_jobs, settings):
    raw = disks.root / "big.raw"
    raw.write_bytes(os.urandom(256 * MiB))
    vmdk = disks.convert(raw, "vmdk")
    raw.unlink()
    image = start_import(standalone, "vmdk")
    send_file(image, vmdk)

    def cancel_once_converting():
        wait_for(
            lambda: Image.objects.filter(pk=image.pk, stage__in=["converting", "storing"]).exists(),
            what="the conversion to start",
        )
        import_cancel(image=Image.objects.get(pk=image.pk), actor=owner)

    canceller = threading.Thread(target=cancel_once_converting)
    canceller.start()
    run_jobs(["convert"])
    canceller.join()
    run_jobs(["default"])
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "cancelled" in image.error
    assert not ImageReplica.objects.filter(image=image).exists()
    # The qcow2 is stored while it is converted: the chunks already written go with the cancel.
    usage = get_backend(standalone).usage()
    assert usage.logical == 0 and usage.used == 0
    assert not (settings.STAGING_ROOT / str(image.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_import_ends_in_failed_after_reconcile(
    standalone, disks, start_import, rq_redis, settings, short_staging_root
):
    """A real RQ worker (a forked copy of this process) runs the conversion and is killed with SIGKILL."""
    from rq import SimpleWorker

    raw = disks.root / "big.raw"
    raw.write_bytes(os.urandom(512 * MiB))
    vmdk = disks.convert(raw, "vmdk")
    raw.unlink()
    image = start_import(standalone, "vmdk")
    send_file(image, vmdk)
    staging = settings.STAGING_ROOT / str(image.pk)

    pid = os.fork()
    if pid == 0:  # the worker
        try:
            queue = django_rq.get_queue("convert")
            SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)
        finally:
            os._exit(0)
    try:
        # The qcow2 is written into the storage as qemu-nbd reads the VMDK. (The database connection is
        # the worker's too now, so this process asks /proc, not the database.)
        wait_for(lambda: qemu_nbd_serving(staging), what="the conversion to start", interval=0.01)
        assert heartbeat_of(image.pk) is not None
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # qemu-nbd goes with the worker that started it, whether or not it had connected yet.
    wait_for(lambda: not qemu_nbd_serving(staging), timeout=10, what="qemu-nbd to go with the worker")

    # Nothing has noticed yet: the row still says the import is in progress.
    image.refresh_from_db()
    assert image.status == Image.Status.UPLOADING
    report = reconcile()
    assert str(image.pk) in report.failed
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    assert "worker processing it was lost" in image.error
    assert not staging.exists()
    assert get_backend(standalone).usage().logical == 0
    # Running it again changes nothing.
    assert not reconcile().failed


@pytest.mark.parametrize("lost", ["job", "request"])
def test_a_job_lost_before_it_ran_is_enqueued_again(
    lost, standalone, disks, start_import, run_jobs, rq_redis, django_capture_on_commit_callbacks
):
    """A finish job Redis lost, or the request that was to finish the upload (imports.REQUEST_JOB_PREFIX)
    dead before it did: its lock expired and no heartbeat beats."""
    qcow2 = disks.convert(disks.raw(size=2 * MiB), "qcow2")
    image = start_import(standalone, "qcow2")
    send_file(image, qcow2, enqueue=False)  # as if Redis lost the job: nothing is queued
    if lost == "request":
        Image.objects.filter(pk=image.pk).update(job_id=REQUEST_JOB_PREFIX + "0" * 32)
    image.refresh_from_db()
    assert image.stage == "inspecting"
    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile()
    assert report.resumed == [str(image.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error


def test_an_upload_left_unfinished_expires(
    standalone, start_import, run_jobs, django_capture_on_commit_callbacks, settings
):
    image = start_import(standalone, "raw")
    from images.services import upload_begin

    upload_begin(image_id=image.pk, length=8 * MiB)
    with ImportReceiver(image_id=image.pk, offset=0) as receiver:
        receiver.write(os.urandom(MiB))
        receiver.commit()
    assert reconcile().expired == []  # still within its time
    UploadSession.objects.filter(image=image).update(expires_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile()
    assert report.expired == [str(image.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "expired" in image.error
    assert not ImageReplica.objects.filter(image=image).exists()


def test_orphaned_staging_is_removed(db, settings):
    import uuid

    orphan = settings.STAGING_ROOT / str(uuid.uuid4())
    orphan.mkdir()
    (orphan / "upload").write_bytes(b"left over")
    assert reconcile().staging_removed == [orphan.name]
    assert not orphan.exists()


def test_reconcile_runs_every_minute_from_the_cron_config(rq_redis):
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=rq_redis)
    scheduler.load_config_from_file("images.cron")
    jobs = scheduler.get_jobs()
    assert [(job.func_name, job.queue_name, job.interval) for job in jobs] == [
        ("images.jobs.reconcile_job", "maintenance", 60),
        ("images.jobs.data_sweep_job", "maintenance", 3600),
        ("images.downloads.jobs.exports_expire_job", "maintenance", 3600),
    ]
