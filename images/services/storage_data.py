"""What the images app does with image storages' data: data cleanup (the keys its replicas reference,
expired staging files), copying a replica to another storage (sync between standalone storages, migrate
between distributed ones), and the images that keep a storage from being deleted.

Storage knows chunks, objects and keys; this module tells it which keys matter.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from storage import services as storage_services
from storage.backends import StorageError, get_backend
from storage.backends.base import Throttled
from storage.models import ImageStorage
from storage.selectors import forget_usage
from tenants.services import log

from ..models import Image, ImageReplica, UploadSession
from .progress import Heartbeat


def images_on_storage(*, storage: ImageStorage) -> list[str]:
    """Names of the images that keep the storage from being deleted (registered as a storage hook)."""
    images = Image.objects.filter(replicas__storage=storage) | Image.objects.filter(storage=storage)
    return sorted(set(images.values_list("name", flat=True)))


# Data cleanup


def referenced_keys(*, storage: ImageStorage) -> set[str]:
    """Keys of the replicas on the storage that must be kept: ready ones and copies in progress."""
    return set(
        ImageReplica.objects.filter(storage=storage)
        .exclude(state=ImageReplica.State.FAILED)
        .values_list("key", flat=True)
    )


def staging_cleanup(*, now: float | None = None) -> tuple[int, int]:
    """Remove files under STAGING_ROOT not modified for STAGING_EXPIRY_HOURS, except those of uploads
    still open. Returns (files removed, bytes freed)."""
    root = Path(settings.STAGING_ROOT)
    cutoff = (now or time.time()) - settings.STAGING_EXPIRY_HOURS * 3600
    open_sessions = UploadSession.objects.filter(image__status=Image.Status.UPLOADING).exclude(
        staging_path=""
    )
    open_sessions = open_sessions.filter(expires_at__isnull=True) | open_sessions.filter(
        expires_at__gt=timezone.now()
    )
    keep = {os.path.realpath(path) for path in open_sessions.values_list("staging_path", flat=True)}
    removed = freed = 0
    for directory, _dirs, names in os.walk(root, topdown=False):
        for name in names:
            path = os.path.join(directory, name)
            try:
                stat = os.lstat(path)
                if stat.st_mtime < cutoff and os.path.realpath(path) not in keep:
                    os.unlink(path)
                    removed += 1
                    freed += stat.st_blocks * 512
            except FileNotFoundError:
                continue
        if directory != str(root):
            try:
                os.rmdir(directory)  # only when empty
            except OSError:
                pass
    return removed, freed


def storage_data_cleanup(
    *, storage: ImageStorage, actor=None, request=None
) -> storage_services.CleanupReport:
    """Data cleanup of one storage: the chunks or objects no replica references, and expired staging files."""
    staging_removed, staging_freed = staging_cleanup()
    return storage_services.storage_cleanup(
        storage=storage,
        referenced_keys=referenced_keys(storage=storage),
        staging_files_removed=staging_removed,
        staging_bytes_freed=staging_freed,
        actor=actor,
        request=request,
    )


def storage_data_cleanup_enqueue(*, storage: ImageStorage, actor=None, request=None) -> None:
    log(action="storage.cleanup", actor=actor, target=storage, request=request, result="started")
    django_rq.get_queue("maintenance").enqueue(
        "images.jobs.storage_cleanup_job", storage_id=storage.pk, job_timeout=6 * 3600
    )


# Sync (standalone to standalone) and migrate (distributed to distributed)


class CopyMode:
    SYNC = "sync"
    MIGRATE = "migrate"


def _copy_refusal(*, image, source: ImageStorage, target: ImageStorage, mode: str) -> str:
    # Sync: between storages of chunks (standalone, on this machine's disk or on a storage server).
    same_kind = (
        source.uses_chunks and target.uses_chunks
        if mode == CopyMode.SYNC
        else source.kind == target.kind == ImageStorage.Kind.DISTRIBUTED
    )
    if not same_kind:
        if mode == CopyMode.SYNC:
            return _("Images are synchronised only between standalone storages.")
        return _("Images are migrated only between distributed storages.")
    if source.pk == target.pk:
        return _("The source and the target are the same storage.")
    if not target.enabled or target.state != ImageStorage.State.CONNECTED:
        return _("Storage “%(name)s” is disabled or disconnected.") % {"name": target.name}
    if image.status not in (Image.Status.AVAILABLE, Image.Status.DELETED):
        return _("“%(name)s” is %(status)s.") % {"name": image.name, "status": image.get_status_display()}
    if not ImageReplica.objects.filter(image=image, storage=source, state=ImageReplica.State.READY).exists():
        return _("“%(name)s” has no complete copy on “%(storage)s”.") % {
            "name": image.name,
            "storage": source.name,
        }
    existing = ImageReplica.objects.filter(image=image, storage=target).first()
    if existing is not None and existing.state != ImageReplica.State.FAILED:
        return _("“%(name)s” is already on “%(storage)s”.") % {"name": image.name, "storage": target.name}
    return ""


@transaction.atomic
def replica_copy_start(
    *, image, source: ImageStorage, target: ImageStorage, mode: str, actor=None, request=None
):
    """Start copying an image's replica from `source` to `target` (sync or migrate) in a job.

    The target replica is created in state syncing; the job fills in its progress and makes it ready
    or failed. Raises ValidationError saying why when the copy cannot start.
    """
    refusal = _copy_refusal(image=image, source=source, target=target, mode=mode)
    if refusal:
        raise ValidationError(refusal, code="copy_refused")
    source_replica = ImageReplica.objects.get(image=image, storage=source)
    replica, _created = ImageReplica.objects.update_or_create(
        image=image,
        storage=target,
        defaults={
            "key": source_replica.key,
            "state": ImageReplica.State.SYNCING,
            "size": source_replica.size,
            "progress": 0,
            "error": "",
        },
    )
    log(
        action=f"image.{mode}",
        tenant=image.tenant,
        actor=actor,
        target=image,
        request=request,
        result="started",
        message=f"{source.name} → {target.name}",
    )
    django_rq.get_queue("default").enqueue(
        "images.jobs.replica_copy_job",
        replica_id=replica.pk,
        source_storage_id=source.pk,
        mode=mode,
        job_timeout=12 * 3600,
        job_id=replica_copy_job_id(replica.pk),
    )
    return replica


def replica_copy_job_id(replica_id) -> str:
    """The copy job's id: the reconciler finds it from the replica (a replica has one copy at a time)."""
    return f"replica-copy-{replica_id}"


def replica_heartbeat(replica_id) -> str:
    return f"replica-{replica_id}"


def replicas_copy_start(
    *, images, source: ImageStorage, target: ImageStorage, mode: str, actor=None, request=None
):
    """Bulk form: each image on its own. Returns (started replicas, [(image, reason)] refused)."""
    started, refused = [], []
    for image in images:
        try:
            started.append(
                replica_copy_start(
                    image=image, source=source, target=target, mode=mode, actor=actor, request=request
                )
            )
        except ValidationError as error:
            refused.append((image, " ".join(error.messages)))
    return started, refused


def replica_copy_run(*, replica_id: int, source_storage_id: int, mode: str) -> None:
    """The job's work: copy, then mark the replica ready (or failed with the reason). Safe to run twice."""
    replica = ImageReplica.objects.select_related("image", "storage").filter(pk=replica_id).first()
    if replica is None or replica.state != ImageReplica.State.SYNCING:
        return
    source_replica = (
        ImageReplica.objects.select_related("storage")
        .filter(image_id=replica.image_id, storage_id=source_storage_id, state=ImageReplica.State.READY)
        .first()
    )
    image = replica.image

    def fail(reason: str) -> None:
        ImageReplica.objects.filter(pk=replica.pk).update(
            state=ImageReplica.State.FAILED, error=reason, updated_at=timezone.now()
        )
        log(action=f"image.{mode}", tenant=image.tenant, target=image, result="failure", message=reason)

    if source_replica is None:
        fail(_("The source copy is gone."))
        return
    total = max(source_replica.size, 1)

    def progress(done: int) -> None:
        ImageReplica.objects.filter(pk=replica.pk, state=ImageReplica.State.SYNCING).update(
            progress=min(99, done * 100 // total), updated_at=timezone.now()
        )

    def cancelled() -> bool:
        return not ImageReplica.objects.filter(pk=replica.pk, state=ImageReplica.State.SYNCING).exists()

    try:
        with Heartbeat(replica_heartbeat(replica.pk)):
            result = get_backend(source_replica.storage).copy_to(
                source_replica.key,
                get_backend(replica.storage),
                progress=Throttled(progress),
                should_cancel=cancelled,
            )
    except StorageError as error:
        fail(str(error))
        return
    if image.sha256 and result.sha256 != image.sha256:
        get_backend(replica.storage).delete(replica.key)
        fail(_("The copy's SHA256 does not match the image's; the source copy may be damaged."))
        return
    with transaction.atomic():
        ImageReplica.objects.filter(pk=replica.pk).update(
            state=ImageReplica.State.READY,
            size=result.size,
            progress=100,
            error="",
            updated_at=timezone.now(),
        )
        if mode == CopyMode.MIGRATE:
            # The image now lives on the target; the source data stays until a data cleanup.
            ImageReplica.objects.filter(pk=source_replica.pk).delete()
            Image.objects.filter(pk=image.pk, storage_id=source_storage_id).update(storage=replica.storage)
        log(
            action=f"image.{mode}",
            tenant=image.tenant,
            target=image,
            message=_("%(source)s → %(target)s: %(size)s copied")
            % {
                "source": source_replica.storage.name,
                "target": replica.storage.name,
                "size": filesizeformat(result.bytes_stored),
            },
        )
    forget_usage(storage=replica.storage)
