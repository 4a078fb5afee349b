"""The domain follows the image: a UEFI image starts with the host's OVMF firmware (and boots under it),
an image without VirtIO gets SATA disks."""

import xml.etree.ElementTree as ET

import libvirt
import pytest

from compute.services import vms

from .conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_uefi_and_emulated_devices_from_the_image(
    tenant, owner, compute_host, boot_qcow2, import_image, run_jobs
):
    uefi = import_image(boot_qcow2, name="uefi-sata", boot_mode="uefi", virtio=False, cloud_init=False)
    vm = vms.vm_create(tenant=tenant, image=uefi, name="uefi-1", vcpus=1, memory_mib=256, actor=owner)
    assert run_jobs() == 0
    vm.refresh_from_db()
    assert vm.state == "running", vm.error
    assert vm.boot_mode == "uefi"
    conn = libvirt.open(compute_host.uri)
    try:
        live = ET.fromstring(conn.lookupByName(vm.domain_name).XMLDesc(0))
    finally:
        conn.close()
    assert "OVMF" in live.findtext("os/loader")
    assert live.find("os/nvram") is not None  # the VM's own UEFI variables
    assert live.find("os/type").get("machine").startswith("pc-q35")
    assert [t.get("bus") for t in live.findall("devices/disk/target")] == ["sata"]
    assert not vm.seed_volume  # no cloud-init: no seed

    # It boots under UEFI: OVMF's boot manager finds no loader of its own on the disk, starts its UEFI
    # shell, which runs the disk's startup.nsh, which starts the kernel through its EFI stub; the kernel's
    # init then writes to the serial console. (A BIOS has no UEFI shell: this path is UEFI's alone.)
    def booted():
        console = "\n".join(vms.vm_console_tail(vm=vm, lines=200))
        return "IMAGECONSOLE-INIT" in console and console

    console = wait_for(booted, timeout=180)
    assert "UEFI Interactive Shell" in console and "startup.nsh" in console
    assert "SeaBIOS" not in console
    assert console.index("UEFI Interactive Shell") < console.index("IMAGECONSOLE-INIT")
    vms.vm_delete(vm=vm, actor=owner)
