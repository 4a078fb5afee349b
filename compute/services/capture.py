"""A new self-made image from a stopped VM's disk (seed 000's `creating` status).

The VM's overlay is flattened on the host into a standalone qcow2 volume (virStorageVolCreateXMLFrom),
streamed back with virStorageVolDownload through the import pipeline's inspection (the format inspector
and its safety checks) into the storage (MD5 and SHA256 in the same pass), and the image becomes
`available`; the flattened volume is removed whatever happens.
"""

import logging

import django_rq
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from imageconsole.core.words import gettext as _
from images.catalog import validate_image_name
from images.inspection import ImportRefused, StreamInspector
from images.models import SYSTEM_FIELDS, Image, ImageReplica
from images.services.transitions import image_transition
from storage.backends import StorageError, get_backend
from storage.selectors import storage_choices_for_import
from tenants.services import log, quota_check, quota_lock

from .. import hypervisor
from ..hypervisor import HypervisorError
from ..models import VirtualMachine
from .vms import VMActionRefused, vm_refresh

logger = logging.getLogger("compute.capture")

COPIED_FIELDS = SYSTEM_FIELDS


def vm_capture(*, vm: VirtualMachine, name: str, description: str = "", actor=None, request=None) -> Image:
    """Start capturing: the image exists in `creating` and a job does the rest."""
    vm = vm_refresh(vm)
    if vm.state != VirtualMachine.State.STOPPED:
        raise VMActionRefused(
            _("“%(name)s” is %(state)s; stop it before creating an image from it.")
            % {"name": vm.name, "state": vm.get_state_display()}
        )
    try:
        validate_image_name(name)
    except ValidationError as error:
        raise ValidationError({"name": error.messages}) from error
    storage = vm.image.storage if vm.image.storage and vm.image.storage.enabled else None
    storage = storage or storage_choices_for_import(tenant=vm.tenant).first()
    if storage is None:
        raise ValidationError(_("No image storage is enabled and connected."))
    with transaction.atomic():
        quota_lock(tenant=vm.tenant)
        quota_check(tenant=vm.tenant, add_images=1)
        image = Image.objects.create(
            tenant=vm.tenant,
            project_group=vm.project_group,
            owner=actor if actor is not None and getattr(actor, "pk", None) else None,
            storage=storage,
            name=name,
            description=description,
            kind=Image.Kind.SYSTEM,
            disk_format=Image.DiskFormat.QCOW2,
            source_format=Image.DiskFormat.QCOW2,
            source=Image.Source.VM,
            status=Image.Status.CREATING,
            stage=Image.Stage.QUEUED,
            **{field: getattr(vm.image, field) for field in COPIED_FIELDS},
        )
        log(
            action="image.create_from_vm",
            tenant=vm.tenant,
            actor=actor,
            target=image,
            result="started",
            message=f"VM {vm.name}",
            request=request,
        )
        transaction.on_commit(
            lambda: django_rq.get_queue("imports").enqueue(
                "compute.jobs.vm_capture_job", vm_id=str(vm.pk), image_id=str(image.pk), job_timeout=6 * 3600
            )
        )
    return image


def _fail(image_id, message: str) -> None:
    image_transition(
        image_id=image_id,
        to=Image.Status.FAILED,
        allowed_from=[Image.Status.CREATING],
        action="image.create_from_vm",
        result="failure",
        message=message,
        changes={"error": message, "stage": Image.Stage.NONE, "progress": 0, "size": 0},
    )


def vm_capture_run(*, vm_id, image_id) -> None:
    image = Image.objects.select_related("storage").filter(pk=image_id, status=Image.Status.CREATING).first()
    if image is None:
        return
    vm = VirtualMachine.objects.select_related("host").filter(pk=vm_id).first()
    if vm is None:
        _fail(image.pk, _("The VM was deleted before its disk was copied."))
        return
    flat = f"{vm.domain_name}-capture-{image.pk}.qcow2"
    host = vm.host
    backend = get_backend(image.storage)
    writer = None
    try:
        Image.objects.filter(pk=image.pk).update(stage=Image.Stage.CONVERTING, progress=0)
        size = hypervisor.flatten_volume(host, source=vm.disk_volume, name=flat)
        Image.objects.filter(pk=image.pk).update(
            stage=Image.Stage.STORING, bytes_total=size, bytes_done=0, progress=0
        )
        writer = backend.open_writer(str(image.pk), expected_size=size)
        inspector = StreamInspector("qcow2")
        done, last = 0, 0.0
        for block in hypervisor.download_volume(host, name=flat):
            inspector.feed(block)
            writer.write(block)
            done += len(block)
            now = timezone.now().timestamp()
            if now - last >= 1:
                last = now
                Image.objects.filter(pk=image.pk).update(
                    bytes_done=done, progress=min(99, done * 100 // max(size, 1))
                )
        inspection = inspector.finish()
        result = writer.commit()
        writer = None
    except ImportRefused as refused:
        _fail(image.pk, refused.message)
        return
    except (HypervisorError, StorageError) as error:
        _fail(image.pk, _("Copying the VM's disk failed: %(error)s") % {"error": error})
        return
    finally:
        if writer is not None:
            writer.abort()
        try:
            hypervisor.delete_volumes(host, [flat])
        except HypervisorError:
            logger.warning("could not remove %s from %s", flat, host, exc_info=True)
    with transaction.atomic():
        ImageReplica.objects.update_or_create(
            image=image,
            storage=image.storage,
            defaults={
                "key": result.key,
                "state": ImageReplica.State.READY,
                "size": result.size,
                "progress": 100,
            },
        )
        image_transition(
            image_id=image.pk,
            to=Image.Status.AVAILABLE,
            allowed_from=[Image.Status.CREATING],
            action="image.create_from_vm",
            message=_("%(size)s stored from VM %(vm)s, SHA256 %(sha256)s")
            % {"size": filesizeformat(result.size), "vm": vm.name, "sha256": result.sha256},
            changes={
                "size": result.size,
                "virtual_size": inspection.virtual_size,
                "md5": result.md5,
                "sha256": result.sha256,
                "encrypted": inspection.encrypted,
                "stage": Image.Stage.NONE,
                "progress": 100,
                "bytes_done": result.size,
                "error": "",
            },
        )
