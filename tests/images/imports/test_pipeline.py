"""Each format imported to `available` through a real worker, the stored bytes read back and compared
with what the conversion should give."""

import hashlib
import subprocess

import pytest

from images.models import Image, ImageReplica
from storage.backends import get_backend

from .conftest import MiB, make_iso, send_file, stored_bytes


def qemu_compare(a, fmt_a, b, fmt_b) -> bool:
    done = subprocess.run(
        ["qemu-img", "compare", "-f", fmt_a, "-F", fmt_b, str(a), str(b)], capture_output=True
    )
    return done.returncode == 0


def import_file(start_import, storage, path, fmt, django_capture_on_commit_callbacks, run_jobs, **kw):
    image = start_import(storage, fmt, **kw)
    with django_capture_on_commit_callbacks(execute=True):
        send_file(image, path, pieces=kw.pop("pieces", 1) if "pieces" in kw else 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    return image


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_stored_as_it_arrives(
    fmt, standalone, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    raw = disks.raw(size=6 * MiB)
    path = raw if fmt == "raw" else disks.convert(raw, fmt)
    image = import_file(start_import, standalone, path, fmt, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.stage == "" and image.progress == 100
    data = path.read_bytes()
    assert stored_bytes(image) == data
    assert image.size == len(data)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.md5 == hashlib.md5(data).hexdigest()
    assert image.virtual_size == 6 * MiB
    assert image.disk_format == fmt
    assert image.replicas.get().state == ImageReplica.State.READY
    assert not (disks.root.parent / "staging" / str(image.pk)).exists()


def test_iso(standalone, tmp_path, start_import, run_jobs, django_capture_on_commit_callbacks):
    iso = make_iso(tmp_path / "boot.iso")
    image = import_file(start_import, standalone, iso, "iso", django_capture_on_commit_callbacks, run_jobs)
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.kind == Image.Kind.ISO
    assert stored_bytes(image) == iso.read_bytes()


@pytest.mark.parametrize(
    "fmt, options",
    [("vmdk", ()), ("vmdk", ("-o", "subformat=streamOptimized")), ("vhd", ()), ("vhdx", ())],
)
def test_converted_to_qcow2_on_standalone(
    fmt, options, standalone, disks, tmp_path, start_import, run_jobs, django_capture_on_commit_callbacks
):
    raw = disks.raw(size=5 * MiB)
    source = disks.convert(raw, fmt, None, *options)
    image = import_file(start_import, standalone, source, fmt, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.source_format == fmt and image.disk_format == "qcow2"
    stored = tmp_path / "stored.qcow2"
    stored.write_bytes(stored_bytes(image))
    assert qemu_compare(stored, "qcow2", raw, "raw")
    assert image.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert image.virtual_size >= 5 * MiB


def test_vmdk_converted_to_raw_on_distributed(
    distributed, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    raw = disks.raw(size=5 * MiB)
    source = disks.convert(raw, "vmdk")
    image = import_file(
        start_import, distributed, source, "vmdk", django_capture_on_commit_callbacks, run_jobs
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.disk_format == "raw"
    assert stored_bytes(image) == raw.read_bytes()
    assert image.md5 == hashlib.md5(raw.read_bytes()).hexdigest()


def test_qcow2_on_distributed_stays_qcow2(
    distributed, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    source = disks.convert(disks.raw(size=5 * MiB), "qcow2")
    image = import_file(
        start_import, distributed, source, "qcow2", django_capture_on_commit_callbacks, run_jobs
    )
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == source.read_bytes()


def test_ova_disk_converted(
    standalone, disks, tmp_path, start_import, run_jobs, django_capture_on_commit_callbacks
):
    raw = disks.raw(size=5 * MiB)
    vmdk = disks.convert(raw, "vmdk", "disk1.vmdk", "-o", "subformat=streamOptimized")
    ova = disks.ova(vmdk)
    image = import_file(start_import, standalone, ova, "ova", django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.source_format == "ova" and image.disk_format == "qcow2"
    stored = tmp_path / "stored.qcow2"
    stored.write_bytes(stored_bytes(image))
    assert qemu_compare(stored, "qcow2", raw, "raw")


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk"])
def test_resumed_upload_gives_the_same_image(
    fmt, standalone, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    raw = disks.raw(size=9 * MiB)
    source = disks.convert(raw, fmt)
    image = start_import(standalone, fmt)
    with django_capture_on_commit_callbacks(execute=True):
        send_file(image, source, pieces=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.upload.resumes == 2
    assert image.upload.received_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    if fmt == "qcow2":
        assert stored_bytes(image) == source.read_bytes()
        # Only the final replica is kept: the partial ones were deleted as the upload went on.
        backend = get_backend(standalone)
        assert not backend.exists(str(image.pk))
        assert backend.exists(image.replicas.get().key)
