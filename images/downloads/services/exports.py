"""Exports: one complete file per format, written into the image's storage by a `default` job."""

import hashlib
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import django_rq
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from imageconsole.core.words import gettext as _
from storage.backends import ReplicaNotFound, StorageError, get_backend
from tenants.services import log

from ... import conf
from ...conversion import ConversionCancelled, convert
from ...hooks import register_before_expunge
from ...inspection import QEMU_FORMATS, ImportRefused
from ...models import DownloadLink, DownloadSettings, ExportedImage, Image, ImageReplica
from .common import FILE_EXTENSIONS, DownloadRefused, ready_replica

EXPORT_JOB_TIMEOUT = 6 * 3600
# qemu-img's name and creation options of each export format.
EXPORT_TARGETS = {
    ExportedImage.Format.QCOW2: ("qcow2", []),
    ExportedImage.Format.RAW: ("raw", []),
    ExportedImage.Format.VMDK: ("vmdk", ["subformat=streamOptimized"]),
    # force_size keeps the virtual size exact instead of rounding it to a CHS geometry.
    ExportedImage.Format.VHD: ("vpc", ["subformat=dynamic", "force_size=on"]),
}


def export_create(*, image: Image, fmt: str, actor, request=None) -> ExportedImage:
    """Export the image once in `fmt`: a `default` job writes the file into the image's storage. A failed
    export of that format is run again; an exporting or exported one is refused."""
    if fmt not in ExportedImage.IMAGE_FORMATS:
        raise ValidationError(
            {
                "format": [
                    _("Choose one of: %(formats)s.") % {"formats": ", ".join(ExportedImage.IMAGE_FORMATS)}
                ]
            }
        )
    if image.status != Image.Status.AVAILABLE:
        raise DownloadRefused(
            _("“%(name)s” is %(status)s: only available images can be exported.")
            % {"name": image.name, "status": image.get_status_display()},
            code="not_available",
        )
    if image.kind == Image.Kind.ISO:
        raise DownloadRefused(_("ISO images are downloaded as they are; they are not exported."), code="iso")
    replica = ready_replica(image)
    if replica is None:
        raise DownloadRefused(
            _("No stored copy of “%(name)s” is ready.") % {"name": image.name}, code="no_replica"
        )
    job_id = uuid.uuid4().hex
    with transaction.atomic():
        existing = ExportedImage.objects.select_for_update().filter(image=image, format=fmt).first()
        if existing is not None and existing.status != ExportedImage.Status.FAILED:
            raise DownloadRefused(
                _(
                    "“%(name)s” is already exported as %(format)s. Download that export, or delete it to "
                    "export again."
                )
                % {"name": image.name, "format": fmt},
                code="already_exported",
            )
        export = existing or ExportedImage(id=uuid.uuid4(), tenant=image.tenant, image=image, format=fmt)
        export.storage = replica.storage
        export.key = f"{export.pk}.{FILE_EXTENSIONS[fmt]}"
        export.status = ExportedImage.Status.EXPORTING
        export.progress = 0
        export.error = ""
        export.size = 0
        export.md5 = export.sha256 = ""
        export.job_id = job_id
        export.created_by = actor if actor is not None and actor.pk else None
        try:
            with transaction.atomic():
                export.save()
        except IntegrityError:
            raise DownloadRefused(
                _("“%(name)s” is already being exported as %(format)s.")
                % {"name": image.name, "format": fmt},
                code="already_exported",
            ) from None
        log(
            action="image.export",
            tenant=image.tenant,
            actor=actor,
            target=image,
            message=_("Export as %(format)s started") % {"format": fmt},
            request=request,
        )
        transaction.on_commit(lambda: _enqueue_export(export_id=export.pk, job_id=job_id))
    return export


def _enqueue_export(*, export_id, job_id: str) -> None:
    django_rq.get_queue("default").enqueue(
        "images.downloads.jobs.export_image_job",
        export_id=str(export_id),
        job_id=job_id,
        job_timeout=EXPORT_JOB_TIMEOUT,
        failure_ttl=7 * 86400,
    )


def _export_progress(export_id, percent: float) -> None:
    ExportedImage.objects.filter(pk=export_id, status=ExportedImage.Status.EXPORTING).update(
        progress=min(int(percent), 99), updated_at=timezone.now()
    )


def _still_wanted(export_id, job_id: str) -> bool:
    return ExportedImage.objects.filter(
        pk=export_id, status=ExportedImage.Status.EXPORTING, job_id=job_id
    ).exists()


def _file_hashes(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(4 * 1024 * 1024):
            md5.update(block)
            sha256.update(block)
    return md5.hexdigest(), sha256.hexdigest()


def export_run(*, export_id) -> None:
    """The export job: copy the image out of the storage, convert it, hash it, and put the file into the
    storage's exports. Safe to run twice: an export that is not exporting (or whose job was replaced)
    is left alone."""
    export = ExportedImage.objects.select_related("image", "storage").filter(pk=export_id).first()
    if export is None or export.status != ExportedImage.Status.EXPORTING:
        return
    job_id = export.job_id
    image = export.image
    workdir = conf.staging_root() / "exports" / f"{export.pk}-{job_id[:8]}"
    backend = get_backend(export.storage)
    try:
        replica = ImageReplica.objects.filter(
            image=image, storage=export.storage, state=ImageReplica.State.READY
        ).first()
        if replica is None:
            raise DownloadRefused(
                _("The image's stored copy is gone from storage “%(name)s”.") % {"name": export.storage.name}
            )
        workdir.mkdir(parents=True, exist_ok=True)
        target_format, options = EXPORT_TARGETS[export.format]
        backend.check_capacity(
            max(image.size, image.virtual_size or 0) if export.format == "raw" else image.size
        )
        source = workdir / "source"
        backend.copy_to_path(replica.key, source)
        _export_progress(export.pk, 10)
        if QEMU_FORMATS.get(image.disk_format, image.disk_format) == target_format and not options:
            output = source  # the stored file already is the export
        else:
            output = workdir / "output"
            convert(
                source=str(source),
                source_format=image.disk_format,
                target=str(output),
                target_format=target_format,
                options=options,
                progress=lambda percent: _export_progress(export.pk, 10 + percent * 0.8),
                should_cancel=lambda: not _still_wanted(export.pk, job_id),
            )
            source.unlink()
        md5, sha256 = _file_hashes(output)
        _export_progress(export.pk, 95)
        if not _still_wanted(export.pk, job_id):
            return
        size = backend.export_put(export.key, output)
        with transaction.atomic():
            updated = _mark_ready(
                ExportedImage.objects.filter(pk=export.pk, job_id=job_id), size=size, md5=md5, sha256=sha256
            )
            if updated:
                log(
                    action="image.export",
                    tenant=export.tenant,
                    target=image,
                    message=_("Exported as %(format)s (%(size)d bytes, MD5 %(md5)s)")
                    % {"format": export.format, "size": size, "md5": md5},
                )
        if not updated:  # deleted (or restarted) meanwhile: the file is nobody's
            backend.export_delete(export.key)
    except ConversionCancelled:
        return
    except (DownloadRefused, ImportRefused, StorageError, ReplicaNotFound, OSError) as error:
        message = getattr(error, "message", None) or str(error)
        _export_failed(export, job_id, message)
    except BaseException as error:
        _export_failed(
            export, job_id, _("The export failed unexpectedly (%(error)s).") % {"error": type(error).__name__}
        )
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- exports made by an app above images (compute's OVA of a VM) -----------------------------------------
# The app writes the file itself; these put it into the image's storage as one of the image's exports, so
# it is listed, downloaded through links, expires and is deleted like the others.


def made_export_start(*, image: Image, fmt: str, source_name: str, source_id, actor=None) -> ExportedImage:
    """A new export of `image` in `fmt`, made from `source_name` (a VM built on the image): exporting until
    made_export_finish hands over its file."""
    replica = ready_replica(image)
    if replica is None:
        raise DownloadRefused(
            _("No stored copy of “%(name)s” is ready.") % {"name": image.name}, code="no_replica"
        )
    pk = uuid.uuid4()
    return ExportedImage.objects.create(
        id=pk,
        tenant=image.tenant,
        image=image,
        storage=replica.storage,
        format=fmt,
        key=f"{pk}.{fmt}",
        source_name=source_name,
        source_id=source_id,
        job_id=uuid.uuid4().hex,
        created_by=actor if actor is not None and actor.pk else None,
    )


def _mark_ready(rows, *, size: int, md5: str, sha256: str) -> int:
    """The export rows still exporting become ready, expiring after the retention; how many did."""
    retention = DownloadSettings.current().export_retention_days
    now = timezone.now()
    return rows.filter(status=ExportedImage.Status.EXPORTING).update(
        status=ExportedImage.Status.READY,
        progress=100,
        size=size,
        md5=md5,
        sha256=sha256,
        finished_at=now,
        expires_at=now + timedelta(days=retention) if retention else None,
        updated_at=now,
    )


def made_export_progress(export_id, percent: float) -> None:
    _export_progress(export_id, percent)


def made_export_finish(*, export_id, path: Path) -> ExportedImage | None:
    """Hash the finished file, move it into the storage's exports, and make the export ready. None when
    the export was deleted meanwhile (the file is then removed)."""
    export = ExportedImage.objects.select_related("storage", "image").filter(pk=export_id).first()
    if export is None or export.status != ExportedImage.Status.EXPORTING:
        Path(path).unlink(missing_ok=True)
        return None
    md5, sha256 = _file_hashes(Path(path))
    backend = get_backend(export.storage)
    size = backend.export_put(export.key, path)
    updated = _mark_ready(ExportedImage.objects.filter(pk=export.pk), size=size, md5=md5, sha256=sha256)
    if not updated:
        backend.export_delete(export.key)
        return None
    export.refresh_from_db()
    return export


def made_export_failed(*, export_id, message: str) -> None:
    export = ExportedImage.objects.select_related("image").filter(pk=export_id).first()
    if export is not None:
        _export_failed(export, export.job_id, message)


def _export_failed(export: ExportedImage, job_id: str, message: str) -> None:
    updated = ExportedImage.objects.filter(
        pk=export.pk, status=ExportedImage.Status.EXPORTING, job_id=job_id
    ).update(status=ExportedImage.Status.FAILED, error=message, updated_at=timezone.now())
    if updated:
        log(
            action="image.export",
            tenant=export.tenant,
            target=export.image,
            result="failure",
            message=message,
        )


def export_delete(*, export: ExportedImage, actor, request=None) -> None:
    """Delete the exported file and the export (its links stop working); the image stays as it is."""
    with transaction.atomic():
        export = (
            ExportedImage.objects.select_for_update().select_related("image", "storage").get(pk=export.pk)
        )
        _remove_export(export)
        log(
            action="image.export.delete",
            tenant=export.tenant,
            actor=actor,
            target=export.image,
            message=_("Export as %(format)s deleted") % {"format": export.format},
            request=request,
        )


def _remove_export(export: ExportedImage) -> None:
    if export.key:
        get_backend(export.storage).export_delete(export.key)
    DownloadLink.objects.filter(export=export).delete()
    export.delete()


def exports_expire(*, now=None) -> int:
    """The hourly sweep: delete the exports whose retention passed (returns how many), and fail the
    exports whose job has been silent longer than a job may run (its worker was killed)."""
    now = now or timezone.now()
    for export in ExportedImage.objects.filter(
        status=ExportedImage.Status.EXPORTING, updated_at__lt=now - timedelta(seconds=EXPORT_JOB_TIMEOUT)
    ).select_related("image"):
        _export_failed(
            export,
            export.job_id,
            _("The export's worker stopped before it finished; export the image again."),
        )
    removed = 0
    for export in ExportedImage.objects.filter(expires_at__lte=now).select_related("image", "storage"):
        with transaction.atomic():
            _remove_export(export)
            log(
                action="image.export.delete",
                tenant=export.tenant,
                target=export.image,
                message=_("Export as %(format)s expired") % {"format": export.format},
            )
        removed += 1
    return removed


@register_before_expunge
def image_downloads_expunge(*, image_id, tenant_id) -> None:
    """Before an image is expunged: delete its exported files and export rows, and its links. Safe to
    run again after a crash half-way."""
    for export in ExportedImage.objects.filter(image_id=image_id, tenant_id=tenant_id).select_related(
        "storage"
    ):
        if export.key:  # a storage error propagates: the expunge stops, and its retry runs this again
            get_backend(export.storage).export_delete(export.key)
        DownloadLink.objects.filter(export=export).delete()
        export.delete()
    DownloadLink.objects.filter(image_id=image_id, tenant_id=tenant_id).delete()
