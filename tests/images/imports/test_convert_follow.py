"""Storing a conversion's output while qemu-img writes it (images.conversion.OutputFollower), which a raw
target uses when the source's data cannot be located (a VHDX whose table cannot be read); every other
conversion is written front to back (test_qcow2_stream), dense or sparse."""

import hashlib
import os
import threading
import time

import pytest

from images import conversion
from images.conversion import OutputFollower
from images.models import Image
from storage.backends import get_backend

from .conftest import MiB, send_file, stored_bytes
from .test_pipeline import qemu_compare

BLOCK = 1 * MiB


def write_in_order(path, data, follower, *, piece=BLOCK, pause=0.01, after=None):
    """What qemu-img does to a raw output: the file is created at its full length (all holes), then
    written from the start, one request after the other, the progress reported as it goes (zero
    regions are skipped, as qemu-img does, and counted). `after()` runs after each piece."""
    with open(path, "wb") as file:
        file.truncate(len(data))
        for offset in range(0, len(data), piece):
            block = data[offset : offset + piece]
            if block.count(0) != len(block):
                os.pwrite(file.fileno(), block, offset)
            follower.advance(100 * min(len(data), offset + piece) / len(data))
            if after is not None:
                after()
            time.sleep(pause)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(conversion, "FOLLOW_MARGIN", 2 * BLOCK)
    monkeypatch.setattr(conversion, "FOLLOW_POLL_SECONDS", 0.005)


def test_the_follower_passes_on_the_file_while_it_is_written(tmp_path, small_blocks):
    data = os.urandom(24 * MiB) + bytes(4 * MiB) + os.urandom(3 * MiB + 12345)  # a hole, an odd tail
    path = tmp_path / "out.raw"
    received = []
    follower = OutputFollower(str(path), sink=received.append, allocated=len(data), block=BLOCK)
    follower.start()
    write_in_order(path, data, follower)

    assert follower.finish() is True
    assert b"".join(received) == data
    # Most of it was passed on while the file was still being written, not after.
    assert follower.followed >= 8 * MiB


def test_the_follower_notices_a_block_changed_after_it_was_passed_on(tmp_path, small_blocks):
    data = os.urandom(24 * MiB)
    path = tmp_path / "out.raw"
    received = []
    follower = OutputFollower(str(path), sink=received.append, allocated=len(data), block=BLOCK)
    follower.start()
    rewritten = threading.Event()

    def rewrite_the_first_block():
        # Once the follower has passed the first block on, the "converter" changes it.
        if not rewritten.is_set() and follower.passed >= BLOCK:
            with open(path, "r+b") as file:
                file.write(b"changed")
            rewritten.set()

    write_in_order(path, data, follower, after=rewrite_the_first_block)
    assert rewritten.is_set()
    assert follower.finish() is False


def test_the_follower_stops_cleanly_when_the_conversion_fails(tmp_path, small_blocks):
    received = []
    follower = OutputFollower(
        str(tmp_path / "never-written.raw"), sink=received.append, allocated=64 * MiB, block=BLOCK
    )
    follower.start()
    follower.stop()
    assert received == []


def dense_raw(disks, size):
    path = disks.root / "dense.raw"
    path.write_bytes(os.urandom(size))
    return path


def assert_stored_qcow2_of(image, raw, tmp_path) -> None:
    """The stored file is a qcow2 with the raw disk's content, and the image's checksums are its own."""
    stored = tmp_path / "stored.qcow2"
    stored.write_bytes(stored_bytes(image))
    assert qemu_compare(stored, "qcow2", raw, "raw")
    assert image.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert image.md5 == hashlib.md5(stored.read_bytes()).hexdigest()


def import_converted(storage, source, fmt, start_import, run_jobs, django_capture_on_commit_callbacks):
    image = start_import(storage, fmt)
    with django_capture_on_commit_callbacks(execute=True):
        send_file(image, source)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    return image


def import_vmdk_logged(storage, vmdk, start_import, run_jobs, callbacks, caplog):
    """import_converted with the pipeline's log captured (it names the way the image was stored)."""
    with caplog.at_level("INFO", logger="images.pipeline"):
        image = import_converted(storage, vmdk, "vmdk", start_import, run_jobs, callbacks)
    assert image.status == Image.Status.AVAILABLE, image.error
    return image


def test_a_dense_vmdk_is_stored_in_one_pass_with_no_preallocated_length(
    standalone, disks, tmp_path, start_import, run_jobs, django_capture_on_commit_callbacks, caplog
):
    raw = dense_raw(disks, 48 * MiB)
    vmdk = disks.convert(raw, "vmdk")
    image = import_vmdk_logged(
        standalone, vmdk, start_import, run_jobs, django_capture_on_commit_callbacks, caplog
    )
    assert "in one pass" in caplog.text
    assert_stored_qcow2_of(image, raw, tmp_path)
    assert image.size < 48 * MiB * 1.02


def test_a_dense_vhdx_to_raw_is_stored_while_qemu_img_writes_it(
    distributed,
    disks,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
    caplog,
    vhdx_table_unreadable,
):
    raw = dense_raw(disks, 48 * MiB)
    vhdx = disks.convert(raw, "vhdx")
    with caplog.at_level("INFO", logger="images.pipeline"):
        image = import_converted(
            distributed, vhdx, "vhdx", start_import, run_jobs, django_capture_on_commit_callbacks
        )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert "storing alongside" in caplog.text
    assert stored_bytes(image) == raw.read_bytes()
    assert image.md5 == hashlib.md5(raw.read_bytes()).hexdigest()


def test_a_sparse_vmdk_keeps_the_compact_layout(
    standalone, disks, tmp_path, start_import, run_jobs, django_capture_on_commit_callbacks, caplog
):
    raw = disks.root / "sparse.raw"
    with open(raw, "wb") as file:
        file.truncate(256 * MiB)
        file.write(os.urandom(4 * MiB))
    vmdk = disks.convert(raw, "vmdk")
    image = import_vmdk_logged(
        standalone, vmdk, start_import, run_jobs, django_capture_on_commit_callbacks, caplog
    )
    assert "in one pass" in caplog.text
    assert image.virtual_size == 256 * MiB
    assert image.size < 8 * MiB  # not a 256 MiB file of holes
    assert_stored_qcow2_of(image, raw, tmp_path)


def test_a_changed_output_is_stored_again_from_the_start(
    distributed,
    disks,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
    monkeypatch,
    caplog,
    vhdx_table_unreadable,
):
    # As if qemu-img had rewritten a region it had written: the follower's check fails.
    real_finish = OutputFollower.finish
    monkeypatch.setattr(OutputFollower, "finish", lambda self: real_finish(self) and False)
    raw = dense_raw(disks, 24 * MiB)
    vhdx = disks.convert(raw, "vhdx")
    with caplog.at_level("INFO", logger="images.pipeline"):
        image = import_converted(
            distributed, vhdx, "vhdx", start_import, run_jobs, django_capture_on_commit_callbacks
        )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == raw.read_bytes()
    assert "storing it again" in caplog.text
    assert get_backend(distributed).usage().logical == image.size
