"""Compute tests run against the real libvirtd of this machine (started when none answers), with guests
under QEMU emulation (TCG): nested KVM here is unreliable. Every libvirt object a test creates (its own
pool with a unique name, the volumes in it, domains) is removed by the test."""

import contextlib
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import libvirt
import pytest

from compute.daemon import LOCAL_URI, ensure_libvirtd
from compute.models import ComputeHost
from compute.services.hosts import host_create
from images.models import Image
from images.services import image_import_create
from storage.models import ImageStorage
from tests.images.imports.conftest import send_file
from tests.storage.conftest import (  # noqa: F401 (storage servers for the image cache's data network)
    make_image,
    make_server_storage,
    make_storage_server,
    storage_server,
)

from .bootdisk import build_boot_disk

POOL_ROOT = Path("/var/lib/libvirt/images")


@pytest.fixture(scope="session")
def libvirtd():
    ensure_libvirtd()
    return LOCAL_URI


def remove_pool(pool_name: str, domain_prefix: str = "ic-") -> None:
    """Domains whose disks live in the pool, its volumes, and the pool itself."""
    conn = libvirt.open(LOCAL_URI)
    try:
        try:
            pool = conn.storagePoolLookupByName(pool_name)
        except libvirt.libvirtError:
            return
        path = pool.XMLDesc(0).split("<path>")[1].split("</path>")[0]
        for domain in conn.listAllDomains(0):
            try:
                description = domain.XMLDesc(0)
            except libvirt.libvirtError:
                continue  # gone since the listing (another test's VM, removed meanwhile)
            if path in description:
                with contextlib.suppress(libvirt.libvirtError):
                    domain.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        if pool.isActive():
            pool.refresh(0)
            for volume in pool.listAllVolumes(0):
                with contextlib.suppress(libvirt.libvirtError):
                    volume.delete(0)
            pool.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            pool.delete(0)
        pool.undefine()
        shutil.rmtree(path, ignore_errors=True)
    finally:
        conn.close()


@pytest.fixture
def pool_name():
    name = f"ictest-{uuid.uuid4().hex[:10]}"
    yield name
    remove_pool(name)


@pytest.fixture
def compute_host(libvirtd, pool_name, db):
    """This machine as a compute host, with its own pool; VMs run under TCG."""
    return host_create(
        name="local",
        uri=libvirtd,
        pool_name=pool_name,
        pool_path=str(POOL_ROOT / pool_name),
        virt_type=ComputeHost.VirtType.QEMU,
    )


@pytest.fixture(scope="session")
def boot_disk(tmp_path_factory) -> Path:
    """The tiny bootable raw disk (see bootdisk.py), built once per session."""
    return build_boot_disk(tmp_path_factory.mktemp("bootdisk"))


def _qcow2(raw: Path) -> Path:
    target = raw.with_suffix(".qcow2")
    if not target.exists():
        subprocess.run(
            ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(target)],
            check=True,
            capture_output=True,
        )
    return target


@pytest.fixture(scope="session")
def boot_qcow2(boot_disk) -> Path:
    return _qcow2(boot_disk)


@pytest.fixture(scope="session")
def acpi_boot_qcow2(tmp_path_factory) -> Path:
    """The tiny disk whose guest powers off on the ACPI power button (see bootdisk.py)."""
    return _qcow2(build_boot_disk(tmp_path_factory.mktemp("bootdisk-acpi"), acpi=True))


@pytest.fixture
def standalone_storage(db, tmp_path):
    (tmp_path / "store").mkdir()
    return ImageStorage.objects.create(
        name=f"local-{uuid.uuid4().hex[:6]}",
        kind=ImageStorage.Kind.STANDALONE,
        mount_path=str(tmp_path / "store"),
        reserved_bytes=0,
    )


@pytest.fixture
def import_image(tenant, owner, standalone_storage, run_jobs):
    """Import a disk file through the import pipeline (an upload) and return the available image."""

    def do(path: Path, *, fmt="qcow2", name=None, **fields) -> Image:
        values = {
            "kind": Image.Kind.SYSTEM,
            "os_type": Image.OSType.LINUX,
            "platform": "Debian",
            "os_version": "12",
            "architecture": Image.Architecture.X86_64,
            "boot_mode": Image.BootMode.BIOS,
            "source": Image.Source.UPLOAD,
            "name": name or f"img-{uuid.uuid4().hex[:6]}",
            "storage": standalone_storage,
            "disk_format": fmt,
            "source_format": fmt,
            "virtio": True,
            "cloud_init": True,
            **fields,
        }
        image = image_import_create(tenant=tenant, fields=values, actor=owner)
        send_file(image, path)
        assert run_jobs() == 0
        image.refresh_from_db()
        assert image.status == Image.Status.AVAILABLE, image.error
        return image

    return do


@pytest.fixture
def boot_image(import_image, boot_qcow2) -> Image:
    return import_image(boot_qcow2, name="tiny-linux")


def wait_for(predicate, *, timeout: float, interval: float = 0.5):
    """predicate() until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        time.sleep(interval)
