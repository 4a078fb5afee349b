"""Export a stopped VM as an OVA template (seed 003): its disk flattened on the host
(virStorageVolCreateXMLFrom), downloaded (virStorageVolDownload), converted to a streamOptimized VMDK
with qemu-img, and packed with an OVF 1.0 descriptor into a tar. The tar becomes one of the exports of the
VM's image (format `ova`, named after the VM) in the image's storage: listed on the images' Exported tab,
downloaded through download links, hashed, expired and deleted like the image's own exports."""

import json
import logging
import shutil
import subprocess
import tarfile
from xml.sax.saxutils import escape

import django_rq
from django.db import transaction
from django.utils.translation import gettext as _

from images import conf as images_conf
from images.downloads import services as downloads
from images.models import ExportedImage
from storage.backends import StorageError
from tenants.services import log

from .. import hypervisor
from ..hypervisor import HypervisorError
from ..models import VirtualMachine
from .vms import VMActionRefused, vm_refresh

logger = logging.getLogger("compute.ova")

JOB_TIMEOUT = 6 * 3600


def vm_export_start(*, vm: VirtualMachine, actor=None, request=None) -> ExportedImage:
    vm = vm_refresh(vm)
    if vm.state != VirtualMachine.State.STOPPED:
        raise VMActionRefused(
            _("“%(name)s” is %(state)s; stop it before exporting it.")
            % {"name": vm.name, "state": vm.get_state_display()}
        )
    with transaction.atomic():
        try:
            export = downloads.made_export_start(
                image=vm.image,
                fmt=ExportedImage.Format.OVA,
                source_name=vm.name,
                source_id=vm.pk,
                actor=actor,
            )
        except downloads.DownloadRefused as error:
            raise VMActionRefused(error.message) from error
        log(
            action="vm.export_ova",
            tenant=vm.tenant,
            actor=actor,
            target=vm,
            result="started",
            request=request,
        )
        transaction.on_commit(
            lambda: django_rq.get_queue("convert").enqueue(
                "compute.jobs.vm_export_job",
                export_id=str(export.pk),
                vm_id=str(vm.pk),
                job_timeout=JOB_TIMEOUT,
            )
        )
    return export


def ovf_descriptor(
    *, name: str, vmdk: str, vmdk_size: int, capacity: int, vcpus: int, memory_mib: int
) -> str:
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


def vm_export_run(*, export_id, vm_id) -> None:
    export = ExportedImage.objects.filter(pk=export_id).first()
    if export is None or export.status != ExportedImage.Status.EXPORTING:
        return
    vm = VirtualMachine.objects.select_related("host").filter(pk=vm_id).first()
    if vm is None:
        downloads.made_export_failed(export_id=export.pk, message=_("The VM was deleted."))
        return
    work = images_conf.staging_root() / "vm-exports" / str(export.pk)
    work.mkdir(parents=True, exist_ok=True)
    flat = f"{vm.domain_name}-export-{export.pk}.qcow2"
    try:
        hypervisor.flatten_volume(vm.host, source=vm.disk_volume, name=flat)
        downloads.made_export_progress(export.pk, 20)
        qcow2 = work / "disk.qcow2"
        with open(qcow2, "wb") as out:
            for block in hypervisor.download_volume(vm.host, name=flat):
                out.write(block)
        downloads.made_export_progress(export.pk, 50)
        vmdk = work / f"{vm.name}-disk1.vmdk"
        subprocess.run(
            [
                "qemu-img",
                "convert",
                "-f",
                "qcow2",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                str(qcow2),
                str(vmdk),
            ],
            check=True,
            capture_output=True,
        )
        qcow2.unlink()
        info = subprocess.run(
            ["qemu-img", "info", "-f", "vmdk", "--output=json", str(vmdk)],
            check=True,
            capture_output=True,
            text=True,
        )
        capacity = json.loads(info.stdout)["virtual-size"]
        ovf = work / f"{vm.name}.ovf"
        ovf.write_text(
            ovf_descriptor(
                name=vm.name,
                vmdk=vmdk.name,
                vmdk_size=vmdk.stat().st_size,
                capacity=capacity,
                vcpus=vm.vcpus,
                memory_mib=vm.memory_mib,
            )
        )
        archive_path = work / "export.ova"
        with tarfile.open(archive_path, "w", format=tarfile.USTAR_FORMAT) as archive:
            archive.add(str(ovf), arcname=ovf.name)  # the descriptor comes first (OVF 1.0)
            archive.add(str(vmdk), arcname=vmdk.name)
        vmdk.unlink()
        downloads.made_export_progress(export.pk, 80)
        done = downloads.made_export_finish(export_id=export.pk, path=archive_path)
    except (HypervisorError, subprocess.CalledProcessError, StorageError, OSError) as error:
        detail = error.stderr if isinstance(error, subprocess.CalledProcessError) else error
        downloads.made_export_failed(export_id=export.pk, message=str(detail)[:2000])
        log(
            action="vm.export_ova",
            tenant=vm.tenant,
            target=vm,
            result="failure",
            message=str(detail)[:500],
        )
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            hypervisor.delete_volumes(vm.host, [flat])
        except HypervisorError:
            logger.warning("could not remove %s", flat, exc_info=True)
    if done is not None:
        log(
            action="vm.export_ova",
            tenant=vm.tenant,
            target=vm,
            message=f"{done.filename}: {done.size} bytes, MD5 {done.md5}",
        )
