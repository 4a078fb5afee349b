"""Compute tests run against the real libvirtd of this machine (started when none answers), with guests
under QEMU emulation (TCG): nested KVM here is unreliable. Every libvirt object a test creates (its own
pool with a unique name, the volumes in it, domains) is removed by the test."""

import contextlib
import shutil
import uuid
from pathlib import Path

import libvirt
import pytest

from compute.daemon import LOCAL_URI, ensure_libvirtd
from compute.models import ComputeHost
from compute.services.hosts import host_create

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
            if path in domain.XMLDesc(0):
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
