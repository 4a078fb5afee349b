"""'Retrieve existing images' of a standalone (server) storage: the directory is listed and the files
read over the storage's own SFTP connection, from the admin page to `available`."""

import hashlib

import pytest

from images.models import Image, UploadSession
from storage.backends.base import StorageError
from tests.storage.conftest import make_server_storage, make_storage_server, storage_server  # noqa: F401

from .conftest import MiB, stored_bytes


@pytest.fixture
def server_incoming(make_server_storage, disks):  # noqa: F811
    """A server storage and, written over SFTP under its mount path, `incoming/` with a qcow2, a raw
    `.img`, and symlinks to a file and a directory outside the mount path."""
    storage, backend = make_server_storage()
    qcow2 = disks.convert(disks.raw(size=4 * MiB, seed=5), "qcow2", "centos.qcow2")
    raw = disks.raw("disk.img", size=3 * MiB, seed=7)
    outside = disks.convert(disks.raw("secret.raw", size=MiB, seed=9), "qcow2", "secret.qcow2")
    incoming = f"{storage.mount_path}/incoming"
    with backend.sftp() as sftp:
        sftp.mkdir(incoming)
        sftp.mkdir(f"{incoming}/nested")
        sftp.put(str(qcow2), f"{incoming}/centos 7.9.qcow2")
        sftp.put(str(raw), f"{incoming}/nested/disk.img")
        sftp.symlink(str(outside), f"{incoming}/escape.qcow2")
        sftp.symlink(str(disks.root), f"{incoming}/elsewhere")
        sftp.symlink(str(disks.root), f"{storage.mount_path}/linked")
        sftp.put(str(qcow2), f"{storage.mount_path}/exports/7.qcow2")  # the store's own: an export
    return storage, backend, {"centos 7.9.qcow2": qcow2, "disk.img": raw}


def _post(admin_client, storage, tenant, directory, **extra):
    return admin_client.post(
        f"/admin/storage/imagestorage/{storage.pk}/retrieve/",
        {"directory": directory, "tenant": tenant.pk, **extra},
    )


def test_a_server_storage_retrieves_its_image_files_over_sftp(
    admin_client,
    other_client,
    tenant,
    server_incoming,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    storage, backend, files = server_incoming
    page = admin_client.get(f"/admin/storage/imagestorage/{storage.pk}/change/")
    assert f"/admin/storage/imagestorage/{storage.pk}/retrieve/" in page.content.decode()

    response = _post(admin_client, storage, tenant, "incoming", find="1")
    assert response.status_code == 200, response.context["form"].errors
    found = {item.path.name: item.disk_format for item in response.context["found"]}
    # The .img is told apart by its content, read over SFTP; the symlinks are neither listed nor followed.
    assert found == {"centos 7.9.qcow2": "qcow2", "disk.img": "raw"}
    assert f"{storage.host}:{storage.mount_path}" in response.content.decode()

    paths = [str(item.path) for item in response.context["found"]]
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(admin_client, storage, tenant, "incoming", retrieve="1", path=paths)
    assert response.status_code == 302
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    images = {image.name: image for image in Image.objects.all()}
    assert set(images) == {"centos 7.9", "disk"}
    for name, filename in (("centos 7.9", "centos 7.9.qcow2"), ("disk", "disk.img")):
        image, data = images[name], files[filename].read_bytes()
        assert image.status == Image.Status.AVAILABLE, image.error
        assert image.source == Image.Source.STORAGE_SCAN and image.tenant == tenant
        assert image.storage == storage
        assert image.md5 == hashlib.md5(data).hexdigest()
        assert image.sha256 == hashlib.sha256(data).hexdigest()
        assert stored_bytes(image) == data  # read back from the server's chunk store
    assert images["disk"].disk_format == "raw"
    with backend.sftp() as sftp:  # the files stay where they were
        assert (
            sftp.stat(f"{storage.mount_path}/incoming/centos 7.9.qcow2").st_size
            == files["centos 7.9.qcow2"].stat().st_size
        )
    session = UploadSession.objects.get(image=images["centos 7.9"])
    assert session.source_url == (
        f"sftp://root@{storage.host}:{storage.ssh_port}{storage.mount_path}/incoming/centos%207.9.qcow2"
    )

    again = _post(admin_client, storage, tenant, "incoming", find="1")
    assert {item.path.name for item in again.context["found"] if item.imported} == {
        "centos 7.9.qcow2",
        "disk.img",
    }

    # Another tenant sees none of them.
    for image in images.values():
        assert other_client.get(f"/images/{image.pk}/").status_code == 404
    listing = other_client.get("/images/").content.decode()
    assert "centos 7.9" not in listing


def test_symlinks_and_directories_outside_the_mount_path_are_refused(
    admin_client, tenant, server_incoming, django_capture_on_commit_callbacks
):
    storage, backend, _files = server_incoming
    incoming = f"{storage.mount_path}/incoming"

    # The whole mount path: `linked` (a symlink to a directory outside) is not followed.
    response = _post(admin_client, storage, tenant, "", find="1")
    assert {item.path.name for item in response.context["found"]} == {"centos 7.9.qcow2", "disk.img"}
    for directory in ("linked", "incoming/elsewhere", "..", "/etc", "chunks", "exports", "missing"):
        response = _post(admin_client, storage, tenant, directory, find="1")
        assert response.context["form"].errors["directory"], directory
        assert response.context["found"] is None

    # Asking for the symlink by name starts nothing, and the server backend will not open it.
    with django_capture_on_commit_callbacks(execute=True):
        _post(admin_client, storage, tenant, "incoming", retrieve="1", path=[f"{incoming}/escape.qcow2"])
    assert not Image.objects.exists()
    for path in (
        f"{incoming}/escape.qcow2",
        f"{incoming}/elsewhere/secret.qcow2",
        f"{incoming}/../../disks/secret.qcow2",
    ):
        with pytest.raises(StorageError):
            with backend.open_mount_file(path):
                pass


def test_a_dropped_connection_resumes_the_read_where_it_stopped(server_incoming):
    """The worker's read of a file on the server: the storage's SSH connection closed once 1 MiB was
    read, the read goes on from the offset reached over a new connection, and the bytes are whole."""
    from contextlib import contextmanager

    from images.fetch import FetchPolicy, fetch_storage_file

    storage, backend, files = server_incoming
    expected = files["centos 7.9.qcow2"].read_bytes()

    class CuttingBackend:
        """The real backend; its connection is closed (for real) after the first MiB of the first read."""

        cut = False

        @contextmanager
        def open_mount_file(self, path):
            with backend.open_mount_file(path) as (remote, size):
                yield CuttingFile(remote), size

    class CuttingFile:
        def __init__(self, remote):
            self.remote = remote

        def readv(self, blocks):
            for (offset, _length), data in zip(blocks, self.remote.readv(blocks), strict=True):
                yield data
                if not CuttingBackend.cut and offset >= MiB:
                    CuttingBackend.cut = True
                    backend.connection.transport.close()
                    # What the next read on the closed channel meets; data paramiko had already
                    # prefetched would otherwise finish this window, and the test would depend on timing.
                    raise EOFError("the connection closed")

    received = bytearray()
    result = fetch_storage_file(
        CuttingBackend(),
        f"{storage.mount_path}/incoming/centos 7.9.qcow2",
        label="centos 7.9.qcow2",
        sink=received.extend,
        policy=FetchPolicy.from_settings(retry_delay=0),
    )

    assert CuttingBackend.cut and result.resumed == 1 and not result.restarted
    assert bytes(received) == expected


def test_the_worker_reads_only_image_files_of_the_mount_path_outside_the_store(
    tenant, server_incoming, django_capture_on_commit_callbacks, run_jobs
):
    """A "storage scan" import is checked again when the worker reads it: an export of the store, a
    symlink, or a file outside the mount path fails the import and nothing is read."""
    from images.services.imports import image_import_create
    from images.services.retrieve import source_url_for

    storage, _backend, _files = server_incoming
    mount = storage.mount_path
    for index, (path, reason) in enumerate(
        (
            (f"{mount}/exports/7.qcow2", "holds the storage's own data"),
            (f"{mount}/incoming/escape.qcow2", "is not a regular file"),
            (f"{mount}/../disks/secret.qcow2", "outside the storage's mount path"),
            (f"{mount}/incoming/.hidden.qcow2", "is not an image file that can be retrieved"),
        )
    ):
        with django_capture_on_commit_callbacks(execute=True):
            image = image_import_create(
                tenant=tenant,
                fields={
                    "name": f"sneaky-{index}",
                    "kind": Image.Kind.SYSTEM,
                    "disk_format": "qcow2",
                    "source_format": "qcow2",
                    "os_type": Image.OSType.OTHER,
                    "storage": storage,
                    "source": Image.Source.STORAGE_SCAN,
                },
                url=source_url_for(storage, path),
            )
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
        image.refresh_from_db()
        assert image.status == Image.Status.FAILED, path
        assert reason in image.error, image.error
        assert not image.sha256


def test_a_storage_server_that_is_down_is_named_on_the_retrieve_page(
    admin_client,
    tenant,
    make_server_storage,  # noqa: F811
    make_storage_server,  # noqa: F811
):
    server = make_storage_server()
    storage, _backend = make_server_storage(server=server)
    server.kill()

    response = _post(admin_client, storage, tenant, "", find="1")

    assert response.status_code == 200
    errors = " ".join(response.context["form"].non_field_errors())
    assert "Cannot reach" in errors or "went away" in errors, errors
    assert response.context["found"] is None
