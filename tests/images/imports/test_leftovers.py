"""A refused, cancelled or killed import leaves the storage as it found it, measured on the storage itself
(every file under a standalone storage's mount path; every object and multipart upload in the bucket),
and chunks another image shares stay. The periodic sweeps are registered and sweep.
"""

import hashlib
import os
import random
import signal
import time
from pathlib import Path

import django_rq
import pytest

from images.inspection import ImportRefused
from images.models import Image, ImageReplica, UploadSession
from images.services import import_cancel, upload_begin
from images.services.receiving import ImportReceiver
from images.services.reconcile import reconcile
from storage.backends import get_backend
from storage.models import ImageStorage
from tenants.models import Quota

from .conftest import MiB, qemu_img, qemu_nbd_serving, send_file, stored_bytes


def snapshot(storage: ImageStorage) -> dict:
    """What the storage holds, byte for byte where it counts: file (or object) names and sizes, and the
    parts of unfinished multipart uploads."""
    backend = get_backend(storage)
    if storage.kind == ImageStorage.Kind.STANDALONE:
        root = Path(storage.mount_path)
        return {
            str(path.relative_to(root)): path.stat().st_size
            for path in root.rglob("*")
            if path.is_file() and path.name != ".gc.lock"
        }
    client, bucket = backend.client, storage.bucket
    held = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        held.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            held[f"multipart:{upload['Key']}"] = sum(part["Size"] for part in parts.get("Parts", []))
    return held


@pytest.fixture(params=["standalone", "distributed"])
def storage(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def base_image(storage, start_import, run_jobs, django_capture_on_commit_callbacks, disks):
    """An available raw image of 8 MiB of random data: the chunks a later import shares with it."""
    path = disks.root / "base.raw"
    path.write_bytes(random.Random(1).randbytes(8 * MiB))
    image = start_import(storage, "raw", name="base")
    with django_capture_on_commit_callbacks(execute=True):
        send_file(image, path)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    return image, path.read_bytes()


def _qcow2(disks, name, size=6 * MiB, seed=2):
    raw = disks.root / f"{name}.raw"
    raw.write_bytes(random.Random(seed).randbytes(size))
    return disks.convert(raw, "qcow2", f"{name}.qcow2")


def _refusals(disks, base_bytes):
    """(kind, path, claimed format, extra fields, words of the message)."""
    root = disks.root
    backed = root / "backed.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(backed), "1M")
    qcow2 = _qcow2(disks, "dense", 12 * MiB)
    truncated = root / "truncated.qcow2"
    truncated.write_bytes(qcow2.read_bytes()[: 8 * MiB])
    longer = root / "longer.raw"  # shares its first 8 MiB (two chunks) with the base image
    longer.write_bytes(base_bytes + random.Random(3).randbytes(8 * MiB))
    vmdk = disks.convert(disks.raw(size=8 * MiB), "vmdk")
    truncated_vmdk = root / "truncated.vmdk"
    truncated_vmdk.write_bytes(vmdk.read_bytes()[: 3 * MiB])
    huge = root / "huge.qcow2"
    qemu_img("create", "-f", "qcow2", str(huge), "30G")
    return {
        "format": (qcow2, "raw", {}, "not a raw image"),
        "unsafe": (backed, "qcow2", {}, "backing file"),
        "truncated": (truncated, "qcow2", {}, "incomplete"),
        "sha256": (longer, "raw", {"expected_sha256": "0" * 64}, "Checksum mismatch"),
        "virtual size": (huge, "qcow2", {"target_size": 20 * 1024**3}, "target size"),
        "damaged vmdk": (truncated_vmdk, "vmdk", {}, "damaged or incomplete"),
    }


REFUSALS = ["format", "unsafe", "truncated", "sha256", "virtual size", "damaged vmdk"]


@pytest.mark.parametrize("kind", REFUSALS)
def test_every_refusal_leaves_the_storage_as_it_was(
    kind, storage, base_image, disks, start_import, run_jobs, django_capture_on_commit_callbacks, settings
):
    base, base_bytes = base_image
    path, fmt, fields, words = _refusals(disks, base_bytes)[kind]
    before = snapshot(storage)
    image = start_import(storage, fmt, **fields)
    with django_capture_on_commit_callbacks(execute=True):
        try:
            send_file(image, path)
        except ImportRefused:
            pass
    for _round in range(2):  # the import's job, then the cleanup it enqueues
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and words in image.error, image.error
    assert snapshot(storage) == before
    assert not ImageReplica.objects.filter(image=image).exists()
    assert not (settings.STAGING_ROOT / str(image.pk)).exists()
    assert stored_bytes(base) == base_bytes  # the chunks it shares stay


def test_a_refusal_by_quota_writes_nothing(storage, tenant, start_import, settings):
    Quota.objects.filter(tenant=tenant).update(max_bytes=100 * MiB)
    before = snapshot(storage)
    for _attempt in range(3):
        image = start_import(storage, "raw")
        with pytest.raises(Exception, match="quota"):
            upload_begin(image_id=image.pk, length=120 * MiB)
        assert snapshot(storage) == before


def test_a_cancel_while_receiving_removes_what_arrived(
    storage, base_image, start_import, owner, run_jobs, django_capture_on_commit_callbacks
):
    _base, base_bytes = base_image
    before = snapshot(storage)
    image = start_import(storage, "raw")
    upload_begin(image_id=image.pk, length=24 * MiB)
    # One request kept 8 MiB (shared with the base image) and 4 more; a second is sending when the user cancels.
    with ImportReceiver(image_id=image.pk, offset=0) as receiver:
        receiver.write(base_bytes + os.urandom(4 * MiB))
        receiver.commit()
    receiver = ImportReceiver(image_id=image.pk, offset=12 * MiB)
    receiver.write(os.urandom(5 * MiB))
    with django_capture_on_commit_callbacks(execute=True):
        import_cancel(image=image, actor=owner)
    receiver.abort()
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    assert snapshot(storage) == before


def _wait(predicate, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _stored_something(storage, before):
    return lambda: snapshot(storage).keys() - before.keys()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stage", ["converting", "storing"])
def test_a_worker_killed_mid_import_leaves_nothing_after_reconcile(
    stage, storage, disks, start_import, rq_redis, settings, short_staging_root
):
    """A real RQ worker (a forked copy of this process) converts a VMDK and is killed with SIGKILL while
    qemu-img writes (or qemu-nbd reads), or once the storage holds part of the result; the reconciler
    removes all of it."""
    from rq import SimpleWorker

    raw = disks.root / "big.raw"
    raw.write_bytes(os.urandom(256 * MiB))
    vmdk = disks.convert(raw, "vmdk")
    raw.unlink()
    before = snapshot(storage)
    image = start_import(storage, "vmdk")
    send_file(image, vmdk)
    staging = settings.STAGING_ROOT / str(image.pk)

    from django.db import connection

    connection.close()  # the worker opens its own: a connection shared across fork breaks both
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            queue = django_rq.get_queue("convert")
            SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)
        finally:
            os._exit(0)
    try:
        if stage == "converting":
            _wait(
                lambda: any(staging.glob("converted.*")) or qemu_nbd_serving(staging),
                "the conversion to start",
            )
        else:
            _wait(_stored_something(storage, before), "the first stored bytes")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # qemu-nbd goes with the worker that started it, whether or not it had connected yet.
    _wait(lambda: not qemu_nbd_serving(staging), "qemu-nbd to go with the worker", timeout=10)

    report = reconcile()
    assert str(image.pk) in report.failed
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    assert "Nothing was kept" in image.error
    assert not staging.exists()
    assert snapshot(storage) == before


def test_the_sweeps_are_registered_and_remove_what_is_past_its_time(rq_redis, standalone, settings):
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=rq_redis)
    scheduler.load_config_from_file("imageconsole.cron")
    registered = {job.func_name: job for job in scheduler.get_jobs()}
    assert registered["images.jobs.data_sweep_job"].queue_name == "maintenance"

    backend = get_backend(standalone)
    backend.ensure_layout()
    old = time.time() - 7 * 24 * 3600
    orphan = backend.chunk_path(hashlib.sha256(b"orphan").hexdigest())
    orphan.write_bytes(b"orphan")
    os.utime(orphan, (old, old))
    fresh = backend.chunk_path(hashlib.sha256(b"fresh").hexdigest())
    fresh.write_bytes(b"fresh")  # an import in flight may be about to reference it
    expired = settings.STAGING_ROOT / "leftover"
    expired.write_bytes(b"x" * 1000)
    os.utime(expired, (old, old))

    registered["images.jobs.data_sweep_job"].func()
    assert not orphan.exists() and not expired.exists()
    assert fresh.exists()


def test_a_lost_import_whose_bytes_cannot_be_removed_does_not_say_nothing_was_kept(
    standalone, start_import, rq_redis, monkeypatch
):
    """The reconciler fails an import whose job is gone; when the storage does not answer the removal,
    the message says part of it stays until the next data cleanup instead of "Nothing was kept"."""
    from storage.backends.base import StorageError
    from storage.backends.standalone import StandaloneBackend

    before = snapshot(standalone)
    image = start_import(standalone, "raw")
    upload_begin(image_id=image.pk, length=8 * MiB)
    with ImportReceiver(image_id=image.pk, offset=0, enqueue=False) as receiver:
        receiver.write(os.urandom(8 * MiB))
        receiver.commit()
    # Its job was lost after it had run once (resumed already): nothing is left to resume it.
    Image.objects.filter(pk=image.pk).update(stage=Image.Stage.CONVERTING, job_id="")
    UploadSession.objects.filter(image=image).update(attempts=1)

    def unreachable(self, key):
        raise StorageError("the storage does not answer")

    monkeypatch.setattr(StandaloneBackend, "delete", unreachable)
    report = reconcile()
    assert str(image.pk) in report.failed
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    assert "Nothing was kept" not in image.error
    assert "could not be removed yet" in image.error and "next data cleanup" in image.error

    # The storage answers again: a data cleanup (here the import's own cleanup) removes the rest.
    monkeypatch.undo()
    from images.services import import_cleanup

    assert import_cleanup(image_id=image.pk)
    assert snapshot(standalone) == before
