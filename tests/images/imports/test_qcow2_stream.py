"""A qcow2 written front to back (images.qcow2stream) from data read through qemu-nbd (images.nbd): what
qemu-img reads back from it, how compact it is, and conversions that store it without a scratch file."""

import hashlib
import json
import os
import subprocess
from collections import namedtuple

import pytest

from images.models import Image
from images.nbd import NbdExport
from images.qcow2stream import CLUSTER, Layout, data_runs, nonzero_runs, write_qcow2
from storage.backends import get_backend

from .conftest import MiB, send_file, stored_bytes
from .test_pipeline import qemu_compare


class FileWriter:
    """A storage writer's interface over a plain file (no write area: write_qcow2 uses its own buffer)."""

    def __init__(self, path):
        self.file = open(path, "wb")

    def write(self, data):
        self.file.write(data)

    def write_area(self):
        return None

    def close(self):
        self.file.close()


def qemu_img(*args) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True).stdout


def compact_size(source, fmt, tmp_path) -> int:
    """The length of qemu-img's own compact conversion to qcow2."""
    target = tmp_path / "by-qemu-img.qcow2"
    qemu_img("convert", "-f", {"vhd": "vpc"}.get(fmt, fmt), "-O", "qcow2", str(source), str(target))
    size = target.stat().st_size
    target.unlink()
    return size


def scattered_raw(path, virtual_size, pieces):
    """A sparse raw disk with random data at (offset, length) places."""
    with open(path, "wb") as file:
        file.truncate(virtual_size)
        for offset, length in pieces:
            file.seek(offset)
            file.write(os.urandom(length))
    return path


def stream_to_file(source, fmt, target, *, scan=False):
    virtual_size = json.loads(qemu_img("info", "--output=json", "-f", fmt, str(source)))["virtual-size"]
    extents = json.loads(qemu_img("map", "--output=json", "-f", fmt, str(source)))
    with NbdExport(source, fmt=fmt) as export:
        runs = data_runs(extents, virtual_size)
        if scan:
            runs = nonzero_runs(runs, virtual_size, export.read_into)
        layout = Layout.of(virtual_size, runs)
        writer = FileWriter(target)
        assert write_qcow2(layout, export.read_into, writer) is True
        writer.close()
    assert target.stat().st_size == layout.size
    return layout


def assert_clean(path):
    done = subprocess.run(["qemu-img", "check", "-f", "qcow2", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No errors were found" in done.stdout


def test_the_streamed_qcow2_reads_back_as_the_disk_and_is_as_compact_as_qemu_imgs(tmp_path):
    # Data in three L2 tables' ranges (each covers 512 MiB), a piece across a cluster boundary, and a
    # disk whose size is not a whole number of clusters, with data in its last, partial cluster.
    virtual_size = 1100 * MiB + 3584
    raw = scattered_raw(
        tmp_path / "disk.raw",
        virtual_size,
        [
            (0, 4096),
            (CLUSTER - 100, 200),
            (3 * MiB, 2 * MiB),
            (600 * MiB, 64 * 1024),
            (virtual_size - 1000, 1000),
        ],
    )
    vmdk = tmp_path / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", str(raw), str(vmdk))
    streamed = tmp_path / "streamed.qcow2"

    layout = stream_to_file(vmdk, "vmdk", streamed)

    assert len(layout.l2_tables) == 3
    assert_clean(streamed)
    assert qemu_compare(streamed, "qcow2", raw, "raw")
    info = json.loads(qemu_img("info", "--output=json", str(streamed)))
    assert info["virtual-size"] == virtual_size
    assert info["format-specific"]["data"]["compat"] == "1.1"
    assert streamed.stat().st_size == compact_size(vmdk, "vmdk", tmp_path)


def test_large_disks_get_every_refcount_block_and_l2_table_they_need(tmp_path):
    """100,000 data clusters (6.5 GB) need four refcount blocks and many L2 tables: qemu-img check reads all
    of them against each other. The data itself is left as holes; only the metadata is checked."""
    runs = [(10, 40_000), (60_000, 30_000), (2_000_000, 30_000)]
    layout = Layout.of(200 * 1024 * MiB, runs)
    assert layout.refcount_blocks == 4
    path = tmp_path / "big.qcow2"
    with open(path, "wb") as file:
        for piece in layout.metadata():
            file.write(piece)
        assert file.tell() == layout.data_offset
        file.truncate(layout.size)
    assert_clean(path)
    mapped = json.loads(qemu_img("map", "--output=json", str(path)))
    data = [(e["start"] // CLUSTER, e["length"] // CLUSTER) for e in mapped if e["data"]]
    assert data == runs
    assert mapped[1]["offset"] == layout.data_offset  # the first data cluster, in guest order


def test_the_zero_scan_leaves_out_clusters_that_hold_only_zeros(tmp_path):
    # A VHD allocates 2 MiB blocks: qemu-img map calls all of each one data.
    raw = scattered_raw(tmp_path / "disk.raw", 64 * MiB, [(5 * CLUSTER + 7, 10), (40 * MiB, 3 * CLUSTER)])
    vhd = tmp_path / "disk.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", str(raw), str(vhd))
    extents = json.loads(qemu_img("map", "--output=json", "-f", "vpc", str(vhd)))
    virtual_size = json.loads(qemu_img("info", "--output=json", str(vhd)))["virtual-size"]
    assert sum(count for _first, count in data_runs(extents, virtual_size)) == 2 * (2 * MiB // CLUSTER)

    with NbdExport(vhd, fmt="vpc") as export:
        runs = nonzero_runs(data_runs(extents, virtual_size), virtual_size, export.read_into)

    assert runs == [(5, 1), (40 * MiB // CLUSTER, 3)]


def test_qemu_nbd_refusing_the_file_is_an_error_with_its_reason(tmp_path):
    from images.nbd import NbdError

    path = tmp_path / "not.vmdk"
    path.write_bytes(b"not a vmdk at all" * 100)
    with pytest.raises(NbdError) as error:
        with NbdExport(path, fmt="vmdk"):
            pass
    assert "invalid VMDK image descriptor" in str(error.value)  # qemu-nbd's own words


# --- through the import pipeline ----------------------------------------------------------------------


def stored_copy_of(image, raw, tmp_path):
    """The image is available and its stored file a sound qcow2 of `raw`'s content; the file's path."""
    assert image.status == Image.Status.AVAILABLE, image.error
    stored = tmp_path / "stored.qcow2"
    stored.write_bytes(stored_bytes(image))
    assert_clean(stored)
    assert qemu_compare(stored, "qcow2", raw, "raw")
    return stored


@pytest.fixture
def staging_room(settings, monkeypatch):
    """`staging_room(MiB)`: from now on the staging area says it has that much free."""
    import shutil

    real = shutil.disk_usage
    usage = namedtuple("usage", "total used free")

    def set_free(free):
        def disk_usage(path):
            if str(path).startswith(str(settings.STAGING_ROOT)):
                return usage(100 * MiB, 100 * MiB - free, free)
            return real(path)

        monkeypatch.setattr(shutil, "disk_usage", disk_usage)

    return set_free


class Importer:
    """Imports a file to the end of its conversion job, with the pipeline's log captured (it says whether
    the image went in one pass)."""

    def __init__(self, start_import, run_jobs, callbacks, caplog, staging_room):
        self.start_import, self.run_jobs, self.callbacks = start_import, run_jobs, callbacks
        self.caplog, self.staging_room = caplog, staging_room

    def __call__(self, storage, source, fmt, *, staging_full=False):
        """With `staging_full`, the staging area has 1 MiB left (less than any output) once the file is in."""
        image = self.start_import(storage, fmt)
        with self.callbacks(execute=True):
            send_file(image, source)
        if staging_full:
            self.staging_room(MiB)
        with self.caplog.at_level("INFO", logger="images.pipeline"), self.callbacks(execute=True):
            assert self.run_jobs() == 0
        image.refresh_from_db()
        return image


@pytest.fixture
def importer(start_import, run_jobs, django_capture_on_commit_callbacks, caplog, staging_room):
    return Importer(start_import, run_jobs, django_capture_on_commit_callbacks, caplog, staging_room)


def sparse_disk(disks, fmt):
    raw = scattered_raw(disks.root / "sparse.raw", 256 * MiB, [(0, 3 * MiB), (100 * MiB + 12345, 2 * MiB)])
    return raw, disks.convert(raw, fmt)


@pytest.mark.parametrize("fmt", ["vmdk", "vhd", "vhdx"])
def test_a_sparse_disk_is_stored_as_it_is_converted_without_a_scratch_file(
    fmt, standalone, disks, tmp_path, importer, caplog
):
    raw, source = sparse_disk(disks, fmt)
    image = importer(standalone, source, fmt, staging_full=True)

    stored = stored_copy_of(image, raw, tmp_path)
    assert "in one pass" in caplog.text
    assert image.size == stored.stat().st_size == compact_size(source, fmt, tmp_path)
    assert image.virtual_size >= 256 * MiB
    assert get_backend(standalone).usage().logical == image.size


def test_a_dense_stream_optimized_vmdk_is_stored_in_one_pass(standalone, disks, tmp_path, importer, caplog):
    """Its grains are compressed, so qemu-img map gives no offsets in the file, and it has no holes: it
    looks like a format that cannot say where its data is, and is not one."""
    raw = disks.root / "dense.raw"
    raw.write_bytes(os.urandom(16 * MiB))
    source = disks.convert(raw, "vmdk", None, "-o", "subformat=streamOptimized")
    image = importer(standalone, source, "vmdk")

    stored_copy_of(image, raw, tmp_path)
    assert "in one pass" in caplog.text


def test_a_vhdx_whose_allocation_cannot_be_read_is_converted_by_qemu_img_and_stays_compact(
    standalone, disks, tmp_path, importer, caplog, vhdx_table_unreadable
):
    """qemu 7's VHDX driver calls the whole disk data, so `qemu-img measure` calls any VHDX dense. Such an
    image is not given a preallocated layout (as long as the disk); qemu-img convert finds its zeros."""
    raw, source = sparse_disk(disks, "vhdx")
    image = importer(standalone, source, "vhdx")

    stored_copy_of(image, raw, tmp_path)
    assert "in one pass" not in caplog.text
    assert image.size == compact_size(source, "vhdx", tmp_path) < 8 * MiB


def test_such_a_vhdx_still_needs_staging_room_for_its_conversion(
    standalone, disks, importer, vhdx_table_unreadable
):
    _raw, source = sparse_disk(disks, "vhdx")
    image = importer(standalone, source, "vhdx", staging_full=True)
    assert image.status == Image.Status.FAILED
    assert "in the staging area" in image.error


def test_qemu_nbd_dying_mid_conversion_fails_the_import_and_keeps_nothing(
    standalone, disks, importer, run_jobs, django_capture_on_commit_callbacks, monkeypatch, settings
):
    """qemu-nbd is killed after its first answer: the import fails with qemu's reason, and neither the
    chunks written so far nor the staged file stay."""
    real_read = NbdExport._read_into
    calls = []

    def read_then_die(self, offset, view):
        if calls:
            self._process.kill()
            self._process.wait()
        calls.append(offset)
        real_read(self, offset, view)

    monkeypatch.setattr(NbdExport, "_read_into", read_then_die)
    raw = disks.root / "dense.raw"
    raw.write_bytes(os.urandom(32 * MiB))
    vmdk = disks.convert(raw, "vmdk")
    image = importer(standalone, vmdk, "vmdk")
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()  # the cleanup the failure enqueued

    assert len(calls) == 2
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    assert image.error.startswith("qemu-img could not convert the image")
    assert get_backend(standalone).usage().logical == 0
    assert not (settings.STAGING_ROOT / str(image.pk)).exists()


def test_a_sparse_vmdk_streams_into_object_storage_as_a_compact_qcow2(
    distributed, disks, tmp_path, importer, caplog
):
    """An S3 storage set to keep qcow2: its writer has no buffer to read into, so the writer's own
    write() takes each block (and copies it)."""
    distributed.target_format = "qcow2"
    distributed.save()
    raw, source = sparse_disk(disks, "vmdk")
    image = importer(distributed, source, "vmdk")

    stored = stored_copy_of(image, raw, tmp_path)
    assert "in one pass" in caplog.text
    assert image.size == compact_size(source, "vmdk", tmp_path)
    assert image.md5 == hashlib.md5(stored.read_bytes()).hexdigest()


def test_a_sparse_vhdx_asks_the_storage_for_room_for_its_data_not_its_disk(
    standalone, disks, tmp_path, start_import, run_jobs, django_capture_on_commit_callbacks
):
    """`qemu-img measure` calls a VHDX as large as its disk (256 MiB); it holds 5 MiB, and the storage
    has 100 MiB above its reserve."""
    raw, source = sparse_disk(disks, "vhdx")
    image = start_import(standalone, "vhdx")
    with django_capture_on_commit_callbacks(execute=True):
        send_file(image, source)
    standalone.reserved_bytes = get_backend(standalone).free_bytes() - 100 * MiB
    standalone.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    stored_copy_of(image, raw, tmp_path)


def test_a_sparse_vmdk_to_raw_is_stored_in_one_pass_with_its_zeros(distributed, disks, importer, caplog):
    """A raw target (the S3 storage's default) holds the disk's zeros: they are written without reading
    them through qemu, and nothing goes to staging first."""
    raw, source = sparse_disk(disks, "vmdk")
    image = importer(distributed, source, "vmdk", staging_full=True)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert "in one pass" in caplog.text
    assert image.disk_format == "raw"
    assert stored_bytes(image) == raw.read_bytes()
    assert image.md5 == hashlib.md5(raw.read_bytes()).hexdigest()
    assert image.sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()
