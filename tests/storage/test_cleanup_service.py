"""The data cleanup service: expunged images' chunks, expired staging files, the job, the report."""

import os
import time

from images.models import Image, ImageReplica, UploadSession
from images.services import storage_data
from tenants.models import OperationLog

from .conftest import MiB, files_under, random_bytes, read_all
from .test_cleanup_standalone import age_everything


def make_old(path, hours):
    old = time.time() - hours * 3600
    os.utime(path, (old, old))


def test_cleanup_frees_expunged_images_and_expired_staging(
    make_standalone, make_image, settings, run_jobs, django_capture_on_commit_callbacks
):
    storage, backend = make_standalone()
    kept = make_image(storage, random_bytes(4 * MiB, 1))
    gone = make_image(storage, random_bytes(8 * MiB, 2))
    in_bin = make_image(storage, random_bytes(4 * MiB, 3))
    Image.objects.filter(pk=in_bin.pk).update(status=Image.Status.DELETED)
    gone.delete()  # expunged: its replica row goes with it, its data stays until a cleanup
    age_everything(backend)

    staging = settings.STAGING_ROOT
    (staging / "expired").mkdir()
    expired = staging / "expired" / "upload.part"
    expired.write_bytes(b"x" * 100_000)
    make_old(expired, settings.STAGING_EXPIRY_HOURS + 1)
    fresh = staging / "fresh.part"
    fresh.write_bytes(b"y" * 1000)
    # An upload still open keeps its staging file however old it is.
    uploading = Image.objects.create(tenant=kept.tenant, name="uploading", disk_format="raw")
    paused = staging / "paused.part"
    paused.write_bytes(b"z" * 1000)
    make_old(paused, settings.STAGING_EXPIRY_HOURS + 1)
    UploadSession.objects.create(image=uploading, staging_path=str(paused))

    with django_capture_on_commit_callbacks(execute=True):
        storage_data.storage_data_cleanup_enqueue(storage=storage)
    assert run_jobs() == 0

    storage.refresh_from_db()
    assert storage.last_cleanup_bytes >= 8 * MiB + 100_000
    assert storage.last_cleanup_at is not None
    assert not expired.exists() and not (staging / "expired").exists()
    assert fresh.exists() and paused.exists()
    assert not backend.exists(str(gone.pk))
    assert read_all(backend, str(kept.pk)) == random_bytes(4 * MiB, 1)
    assert read_all(backend, str(in_bin.pk)) == random_bytes(4 * MiB, 3)  # restorable from the recycle bin
    assert len(files_under(backend.chunks_dir)) == 2
    entry = OperationLog.objects.filter(action="storage.cleanup", result="success").get()
    assert entry.message.replace("\xa0", " ").startswith("8.1 MB freed.")
    assert "unreferenced replicas 1, chunks and leftovers 2, expired staging files 1" in entry.message


def test_a_failed_replica_does_not_keep_its_data(make_standalone, make_image):
    storage, backend = make_standalone()
    image = make_image(storage, random_bytes(4 * MiB, 4))
    ImageReplica.objects.filter(image=image).update(state=ImageReplica.State.FAILED)
    age_everything(backend)
    report = storage_data.storage_data_cleanup(storage=storage)
    assert report.replicas_removed == 1 and report.bytes_freed >= 4 * MiB
    assert "freed" in str(report)
