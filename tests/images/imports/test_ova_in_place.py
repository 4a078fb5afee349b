"""An OVA's disk is read where it lies in the tar (images.conversion.member_source): nothing is copied out
into the staging area, and nothing outside the disk's member can be read through it."""

import hashlib
import os
import subprocess

import pytest

from images.conversion import OvaDisk, member_source, ova_disk
from images.inspection import _is_itself, qemu_img_info
from images.models import Image

from .conftest import MiB, stored_bytes
from .test_convert_follow import import_converted
from .test_pipeline import qemu_compare


@pytest.fixture
def small_staging(settings, tmp_path):
    """A staging area of 40 MiB (a tmpfs of its own): room for an OVA of 24 MiB, not for a copy of its disk."""
    mountpoint = tmp_path / "small-staging"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mountpoint)], check=True)
    settings.STAGING_ROOT = mountpoint
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_an_ova_converts_in_a_staging_area_with_room_only_for_the_ova(
    standalone, disks, tmp_path, small_staging, start_import, run_jobs, django_capture_on_commit_callbacks
):
    raw = disks.root / "dense.raw"
    raw.write_bytes(os.urandom(24 * MiB))
    vmdk = disks.convert(raw, "vmdk", "disk1.vmdk", "-o", "subformat=streamOptimized")
    ova = disks.ova(vmdk)
    assert ova.stat().st_size > 24 * MiB  # random data: streamOptimized compresses nothing

    image = import_converted(
        standalone, ova, "ova", start_import, run_jobs, django_capture_on_commit_callbacks
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    stored = tmp_path / "stored.qcow2"
    stored.write_bytes(stored_bytes(image))
    assert qemu_compare(stored, "qcow2", raw, "raw")
    assert image.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert not list(small_staging.iterdir())  # and staging is empty again


def test_qemu_reads_only_the_disks_member(disks, tmp_path):
    raw = disks.raw(size=4 * MiB)
    vmdk = disks.convert(raw, "vmdk", "disk1.vmdk")
    ova = disks.ova(vmdk)
    disk = ova_disk(str(ova))
    source = member_source(str(ova), disk)

    info = qemu_img_info(source, fmt="vmdk")  # its extent, written out by qemu, is accepted as itself
    assert info["virtual-size"] == 4 * MiB
    assert qemu_compare(source, "vmdk", raw, "raw")
    # A window that ends before the member does cuts the disk short: qemu reads no byte past it.
    short = member_source(str(ova), OvaDisk(disk.name, disk.offset, 64 * 1024, "vmdk", 1))
    assert subprocess.run(["qemu-img", "compare", "-f", "vmdk", "-F", "raw", short, str(raw)]).returncode != 0


def test_an_extent_naming_any_other_file_is_not_itself():
    path = member_source("/staging/x/upload", OvaDisk("disk1.vmdk", 1536, 4096, "vmdk", 1))
    itself = '{"offset": 1536, "driver": "raw", "size": 4096, "file": {"driver": "file", "filename": "/staging/x/upload"}}'
    assert _is_itself("json:" + itself, path)
    assert not _is_itself('json:{"driver": "file", "filename": "/etc/shadow"}', path)
    assert not _is_itself("json:" + itself.replace("1536", "0"), path)
    assert not _is_itself("/staging/x/other.vmdk", path)
    assert not _is_itself("json:{not json", path)
