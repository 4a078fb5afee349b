"""Imports into a standalone (server) storage: the pipeline writes the chunk store over SSH, and a
server that goes away mid-import fails the import with the reason, nothing half written."""

import hashlib
import os
from pathlib import Path

from images.models import Image
from images.services.receiving import ImportReceiver, upload_begin
from storage.backends import get_backend
from storage.backends.server import enroll
from storage.models import ImageStorage
from tests.storage.conftest import make_storage_server, storage_server  # noqa: F401
from tests.storage.servers import ROOT_PASSWORD

from .conftest import MiB, send_file, stored_bytes


def server_storage(server, tmp_path, name="srv"):
    storage = ImageStorage(
        name=name,
        kind=ImageStorage.Kind.SERVER,
        host=server.address,
        mount_path=str(tmp_path / name),
        reserved_bytes=0,
        upload_concurrency=2,
        download_concurrency=2,
    )
    enroll(storage, ROOT_PASSWORD)
    storage.save()
    get_backend(storage).test_connection()
    return storage


def test_an_image_imported_into_a_server_storage_reads_back(
    storage_server,  # noqa: F811
    tmp_path,
    disks,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    storage = server_storage(storage_server, tmp_path)
    path = disks.convert(disks.raw(size=6 * MiB), "qcow2")
    image = start_import(storage, "qcow2")
    with django_capture_on_commit_callbacks(execute=True):
        send_file(image, path, pieces=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()

    assert image.status == Image.Status.AVAILABLE, image.error
    data = path.read_bytes()
    assert stored_bytes(image) == data
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path / "srv" / "manifests")


def test_a_server_killed_mid_import_fails_the_import_with_the_reason(
    make_storage_server,  # noqa: F811
    tmp_path,
    disks,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    server = make_storage_server()
    storage = server_storage(server, tmp_path, "dying")
    path = disks.raw(size=24 * MiB)
    data = Path(path).read_bytes()
    image = start_import(storage, "raw")
    upload_begin(image_id=image.pk, length=len(data), filename="disk.raw")
    failure = None
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with ImportReceiver(image_id=image.pk, offset=0, enqueue=True) as receiver:
                for offset in range(0, len(data), MiB):
                    if offset == 10 * MiB:
                        server.kill()
                    receiver.write(data[offset : offset + MiB])
                receiver.commit()
        except Exception as error:  # the receiver tells the client why
            failure = error
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    image.refresh_from_db()

    assert failure is not None or image.status == Image.Status.FAILED
    assert image.status != Image.Status.AVAILABLE
    reason = f"{image.error} {failure}"
    assert "went away" in reason or "Cannot reach" in reason, reason
    root = tmp_path / "dying"
    assert not list((root / "manifests").iterdir())
    for directory, _dirs, names in os.walk(root / "chunks"):
        for name in names:
            assert hashlib.sha256((Path(directory) / name).read_bytes()).hexdigest() == name
