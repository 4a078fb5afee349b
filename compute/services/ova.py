"""Export a stopped VM as an OVA template (seed 003): its disk flattened on the host
(virStorageVolCreateXMLFrom), downloaded (virStorageVolDownload), converted to a streamOptimized VMDK
with qemu-img, and packed with an OVF 1.0 descriptor into a tar under VM_EXPORT_ROOT."""

import json
import logging
import shutil
import subprocess
import tarfile
from pathlib import Path
from xml.sax.saxutils import escape

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from tenants.services import log

from .. import hypervisor
from ..hypervisor import HypervisorError
from ..models import VirtualMachine, VMExport
from .vms import VMActionRefused, vm_refresh

logger = logging.getLogger("compute.ova")


def export_root() -> Path:
    return Path(settings.VM_EXPORT_ROOT)


def vm_export_start(*, vm: VirtualMachine, actor=None, request=None) -> VMExport:
    vm = vm_refresh(vm)
    if vm.state != VirtualMachine.State.STOPPED:
        raise VMActionRefused(
            _("“%(name)s” is %(state)s; stop it before exporting it.")
            % {"name": vm.name, "state": vm.get_state_display()}
        )
    with transaction.atomic():
        export = VMExport.objects.create(tenant=vm.tenant, vm=vm, vm_name=vm.name)
        log(action="vm.export_ova", tenant=vm.tenant, actor=actor, target=vm, result="started", request=request)
        transaction.on_commit(
            lambda: django_rq.get_queue("convert").enqueue(
                "compute.jobs.vm_export_job", export_id=str(export.pk), job_timeout=6 * 3600
            )
        )
    return export


def ovf_descriptor(*, name: str, vmdk: str, vmdk_size: int, capacity: int, vcpus: int, memory_mib: int) -> str:
    name = escape(name)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
 xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:id="file1" ovf:href="{escape(vmdk)}" ovf:size="{vmdk_size}"/></References>
  <DiskSection><Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{capacity}"
     ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="{name}"><Info>A virtual machine exported by imageconsole</Info><Name>{name}</Name>
    <VirtualHardwareSection><Info>Virtual hardware</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType></System>
      <Item><rasd:ElementName>{vcpus} virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>{vcpus}</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>{memory_mib} MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{memory_mib}</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>SCSI controller</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def vm_export_run(*, export_id) -> None:
    export = VMExport.objects.select_related("vm__host").filter(pk=export_id).first()
    if export is None or export.state != VMExport.State.EXPORTING:
        return
    vm = export.vm
    if vm is None:
        VMExport.objects.filter(pk=export.pk).update(state=VMExport.State.FAILED, error=_("The VM was deleted."))
        return
    work = export_root() / f"{export.pk}.work"
    work.mkdir(parents=True, exist_ok=True)
    flat = f"{vm.domain_name}-export-{export.pk}.qcow2"
    target = export_root() / f"{export.pk}.ova"
    try:
        hypervisor.flatten_volume(vm.host, source=vm.disk_volume, name=flat)
        qcow2 = work / "disk.qcow2"
        with open(qcow2, "wb") as out:
            for block in hypervisor.download_volume(vm.host, name=flat):
                out.write(block)
        vmdk = work / f"{vm.name}-disk1.vmdk"
        subprocess.run(
            ["qemu-img", "convert", "-f", "qcow2", "-O", "vmdk", "-o", "subformat=streamOptimized", str(qcow2), str(vmdk)],
            check=True,
            capture_output=True,
        )
        qcow2.unlink()
        info = subprocess.run(["qemu-img", "info", "-f", "vmdk", "--output=json", str(vmdk)], check=True, capture_output=True, text=True)
        capacity = json.loads(info.stdout)["virtual-size"]
        ovf = work / f"{vm.name}.ovf"
        ovf.write_text(
            ovf_descriptor(
                name=vm.name, vmdk=vmdk.name, vmdk_size=vmdk.stat().st_size, capacity=capacity,
                vcpus=vm.vcpus, memory_mib=vm.memory_mib,
            )
        )
        partial = target.with_suffix(".ova.part")
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as archive:
            archive.add(str(ovf), arcname=ovf.name)  # the descriptor comes first (OVF 1.0)
            archive.add(str(vmdk), arcname=vmdk.name)
        partial.rename(target)
    except (HypervisorError, subprocess.CalledProcessError, OSError) as error:
        detail = error.stderr if isinstance(error, subprocess.CalledProcessError) else error
        VMExport.objects.filter(pk=export.pk).update(state=VMExport.State.FAILED, error=str(detail)[:2000])
        log(action="vm.export_ova", tenant=export.tenant, target=vm, result="failure", message=str(detail)[:500])
        target.unlink(missing_ok=True)
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            hypervisor.delete_volumes(vm.host, [flat])
        except HypervisorError:
            logger.warning("could not remove %s", flat, exc_info=True)
    VMExport.objects.filter(pk=export.pk).update(state=VMExport.State.READY, path=str(target), size=target.stat().st_size)
    log(action="vm.export_ova", tenant=export.tenant, target=vm, message=f"{target.stat().st_size} bytes")


def vm_export_delete(*, export: VMExport, actor=None, request=None) -> None:
    if export.path:
        Path(export.path).unlink(missing_ok=True)
    log(action="vm.export_delete", tenant=export.tenant, actor=actor, target=export, request=request)
    export.delete()
