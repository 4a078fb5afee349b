"""The domain follows the image: a UEFI image starts with the host's OVMF firmware, an image without
VirtIO gets SATA disks."""

import xml.etree.ElementTree as ET

import libvirt
import pytest

from compute.services import vms

pytestmark = pytest.mark.django_db(transaction=True)


def test_uefi_and_emulated_devices_from_the_image(
    tenant, owner, compute_host, boot_qcow2, import_image, run_jobs
):
    uefi = import_image(boot_qcow2, name="uefi-sata", boot_mode="uefi", virtio=False, cloud_init=False)
    vm = vms.vm_create(tenant=tenant, image=uefi, name="uefi-1", vcpus=1, memory_mib=256, actor=owner)
    assert run_jobs() == 0
    vm.refresh_from_db()
    assert vm.state == "running", vm.error
    conn = libvirt.open(compute_host.uri)
    try:
        live = ET.fromstring(conn.lookupByName(vm.domain_name).XMLDesc(0))
    finally:
        conn.close()
    assert "OVMF" in live.findtext("os/loader")
    assert live.find("os/type").get("machine").startswith("pc-q35")
    assert [t.get("bus") for t in live.findall("devices/disk/target")] == ["sata"]
    assert not vm.seed_volume  # no cloud-init: no seed
    vms.vm_delete(vm=vm, actor=owner)
