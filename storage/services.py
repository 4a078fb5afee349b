"""Every state change of image storages: create, edit, reconnect, delete, data cleanup, sync and migrate.

Admin, management commands and jobs call these; nothing else writes an ImageStorage or a replica copy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.services import log

from .backends import StorageError, get_backend
from .backends.base import Throttled
from .models import ImageStorage

DEFAULT_STORAGE_NAME = "local"

# Fields of "modify configuration", per kind ("edit name and description" has its own service).
CONFIGURATION_FIELDS = {
    ImageStorage.Kind.STANDALONE: ["mount_path"],
    ImageStorage.Kind.DISTRIBUTED: ["endpoint_url", "region", "bucket", "access_key", "capacity_bytes"],
}
COMMON_CONFIGURATION_FIELDS = [
    "reserved_bytes",
    "upload_concurrency",
    "download_concurrency",
    "target_format",
]
# Where the bytes are: these cannot change while replicas are stored there, or the images would be lost.
LOCATION_FIELDS = {"mount_path", "endpoint_url", "region", "bucket"}


def _check_connection(storage: ImageStorage) -> str:
    """The reason the storage cannot be used, or "" when it can."""
    try:
        get_backend(storage).test_connection()
    except StorageError as error:
        return str(error)
    return ""


def _apply_connection_result(storage: ImageStorage, reason: str) -> None:
    storage.state = ImageStorage.State.DISCONNECTED if reason else ImageStorage.State.CONNECTED
    storage.state_reason = reason[:500]


@transaction.atomic
def storage_create(
    *,
    kind: str,
    name: str,
    description: str = "",
    data_center: str = "default",
    mount_path: str = "",
    endpoint_url: str = "",
    region: str = "",
    bucket: str = "",
    access_key: str = "",
    secret_key: str = "",
    reserved_bytes: int | None = None,
    upload_concurrency: int = 1,
    download_concurrency: int = 1,
    capacity_bytes: int | None = None,
    target_format: str = "",
    enabled: bool = True,
    actor=None,
    request=None,
) -> ImageStorage:
    """Add a storage. A standalone storage's directory is created and must pass a write test; a
    distributed storage is saved whatever its connection test says, in state disconnected with the
    reason when it fails."""
    storage = ImageStorage(
        kind=kind,
        name=name,
        description=description,
        data_center=data_center,
        mount_path=mount_path,
        endpoint_url=endpoint_url,
        region=region,
        bucket=bucket,
        access_key=access_key,
        upload_concurrency=upload_concurrency,
        download_concurrency=download_concurrency,
        target_format=target_format,
        enabled=enabled,
    )
    if reserved_bytes is not None:
        storage.reserved_bytes = reserved_bytes
    if capacity_bytes is not None:
        storage.capacity_bytes = capacity_bytes
    if kind == ImageStorage.Kind.DISTRIBUTED:
        if not secret_key:
            raise ValidationError({"secret_key": _("Enter the secret key.")}, code="required")
        storage.set_secret_key(secret_key)
    storage.full_clean()
    reason = _check_connection(storage)
    if reason and kind == ImageStorage.Kind.STANDALONE:
        raise ValidationError({"mount_path": reason}, code="write_test")
    _apply_connection_result(storage, reason)
    storage.save()
    log(action="storage.create", actor=actor, target=storage, request=request, message=storage.state_reason)
    return storage


def storage_create_default() -> ImageStorage:
    """The standalone storage "local" at settings.STORAGE_ROOT, created once (`make run`'s demo)."""
    existing = ImageStorage.objects.filter(name=DEFAULT_STORAGE_NAME).first()
    if existing is not None:
        return existing
    return storage_create(
        kind=ImageStorage.Kind.STANDALONE,
        name=DEFAULT_STORAGE_NAME,
        description=_("Created by the demo set-up under STORAGE_ROOT."),
        mount_path=str(settings.STORAGE_ROOT),
    )


@transaction.atomic
def storage_update(
    *,
    storage: ImageStorage,
    name: str,
    description: str,
    data_center: str | None = None,
    enabled: bool | None = None,
    actor=None,
    request=None,
) -> ImageStorage:
    """Edit name and description (and the data center and the enabled flag)."""
    storage.name = name
    storage.description = description
    if data_center is not None:
        storage.data_center = data_center
    if enabled is not None:
        storage.enabled = enabled
    storage.full_clean()
    storage.save()
    log(action="storage.update", actor=actor, target=storage, request=request)
    return storage


@transaction.atomic
def storage_modify_configuration(
    *, storage: ImageStorage, actor=None, request=None, **changes
) -> ImageStorage:
    """Change where and how the storage keeps data; the connection is tested again."""
    allowed = set(CONFIGURATION_FIELDS[storage.kind]) | set(COMMON_CONFIGURATION_FIELDS)
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"not configuration fields of a {storage.kind} storage: {sorted(unknown)}")
    current = ImageStorage.objects.select_for_update().get(pk=storage.pk)
    moved = {field for field in LOCATION_FIELDS & set(changes) if changes[field] != getattr(current, field)}
    if moved and current.replicas.exists():
        raise ValidationError(
            {
                field: _("This storage holds images; their data would be left behind at the old location.")
                for field in moved
            },
            code="has_replicas",
        )
    for field, value in changes.items():
        setattr(storage, field, value)
    storage.full_clean()
    reason = _check_connection(storage)
    if reason and storage.kind == ImageStorage.Kind.STANDALONE:
        raise ValidationError({"mount_path": reason}, code="write_test")
    _apply_connection_result(storage, reason)
    storage.save()
    log(
        action="storage.configure", actor=actor, target=storage, request=request, message=storage.state_reason
    )
    return storage


@transaction.atomic
def storage_update_password(
    *, storage: ImageStorage, secret_key: str, actor=None, request=None
) -> ImageStorage:
    """Store a new secret key. It takes effect with the next reconnect, as in the product's manual."""
    if storage.kind != ImageStorage.Kind.DISTRIBUTED:
        raise ValidationError(_("Only a distributed storage has a secret key."), code="not_distributed")
    if not secret_key:
        raise ValidationError({"secret_key": _("Enter the secret key.")}, code="required")
    storage.set_secret_key(secret_key)
    storage.save(update_fields=["secret_key_encrypted", "updated_at"])
    log(action="storage.update_password", actor=actor, target=storage, request=request)
    return storage


@transaction.atomic
def storage_reconnect(*, storage: ImageStorage, actor=None, request=None) -> ImageStorage:
    """Test the connection again and record the state and the reason."""
    reason = _check_connection(storage)
    _apply_connection_result(storage, reason)
    storage.save(update_fields=["state", "state_reason", "updated_at"])
    log(
        action="storage.reconnect",
        actor=actor,
        target=storage,
        request=request,
        result="failure" if reason else "success",
        message=reason,
    )
    return storage


def storage_delete_blockers(*, storage: ImageStorage) -> list[str]:
    """Names of the images that keep the storage from being deleted."""
    from images.models import Image

    images = Image.objects.filter(replicas__storage=storage) | Image.objects.filter(storage=storage)
    return sorted(set(images.values_list("name", flat=True)))


@transaction.atomic
def storage_delete(*, storage: ImageStorage, actor=None, request=None) -> None:
    """Delete a storage that holds no image. Its data directory or bucket is left as it is."""
    blockers = storage_delete_blockers(storage=storage)
    if blockers:
        shown = ", ".join(f"“{name}”" for name in blockers[:10])
        if len(blockers) > 10:
            shown += _(" and %(count)d more") % {"count": len(blockers) - 10}
        raise ValidationError(
            _("Storage “%(name)s” still holds images: %(images)s. Move or delete them first.")
            % {"name": storage.name, "images": shown},
            code="has_images",
        )
    log(action="storage.delete", actor=actor, target=storage, request=request)
    storage.delete()


# Data cleanup


@dataclass(frozen=True)
class CleanupReport:
    bytes_freed: int
    replicas_removed: int
    blobs_removed: int
    staging_files_removed: int

    def __str__(self):
        return _(
            "%(freed)s freed. Removed: unreferenced replicas %(replicas)d, chunks and leftovers %(blobs)d, "
            "expired staging files %(staging)d."
        ) % {
            "freed": filesizeformat(self.bytes_freed),
            "replicas": self.replicas_removed,
            "blobs": self.blobs_removed,
            "staging": self.staging_files_removed,
        }


def cleanup_grace_seconds() -> float:
    return float(getattr(settings, "STORAGE_CLEANUP_GRACE_HOURS", 6)) * 3600


def referenced_keys(*, storage: ImageStorage) -> set[str]:
    """Keys of the replicas on the storage that must be kept: ready ones and copies in progress."""
    from images.models import ImageReplica

    return set(
        ImageReplica.objects.filter(storage=storage)
        .exclude(state=ImageReplica.State.FAILED)
        .values_list("key", flat=True)
    )


def staging_cleanup(*, now: float | None = None) -> tuple[int, int]:
    """Remove files under STAGING_ROOT not modified for STAGING_EXPIRY_HOURS, except those of uploads
    still open. Returns (files removed, bytes freed)."""
    from images.models import Image, UploadSession

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


def storage_cleanup(*, storage: ImageStorage, actor=None, request=None) -> CleanupReport:
    """Data cleanup: remove the chunks or objects no replica references, and expired staging files.

    Safe while imports run: what is younger than the grace period (STORAGE_CLEANUP_GRACE_HOURS) stays.
    """
    result = get_backend(storage).cleanup(
        referenced_keys=referenced_keys(storage=storage), grace_seconds=cleanup_grace_seconds()
    )
    staging_removed, staging_freed = staging_cleanup()
    report = CleanupReport(
        bytes_freed=result.bytes_freed + staging_freed,
        replicas_removed=result.replicas_removed,
        blobs_removed=result.blobs_removed,
        staging_files_removed=staging_removed,
    )
    ImageStorage.objects.filter(pk=storage.pk).update(
        last_cleanup_at=timezone.now(), last_cleanup_bytes=report.bytes_freed
    )
    from .selectors import forget_usage

    forget_usage(storage=storage)
    log(action="storage.cleanup", actor=actor, target=storage, request=request, message=str(report))
    return report


def storage_cleanup_enqueue(*, storage: ImageStorage, actor=None, request=None) -> None:
    from .jobs import storage_cleanup_job

    log(action="storage.cleanup", actor=actor, target=storage, request=request, result="started")
    django_rq.get_queue("maintenance").enqueue(
        storage_cleanup_job, storage_id=storage.pk, job_timeout=6 * 3600
    )


# Sync (standalone to standalone) and migrate (distributed to distributed)


class CopyMode:
    SYNC = "sync"
    MIGRATE = "migrate"


def _copy_refusal(*, image, source: ImageStorage, target: ImageStorage, mode: str) -> str:
    from images.models import Image, ImageReplica

    kind = ImageStorage.Kind.STANDALONE if mode == CopyMode.SYNC else ImageStorage.Kind.DISTRIBUTED
    if source.kind != kind or target.kind != kind:
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
    from images.models import ImageReplica

    from .jobs import replica_copy_job

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
        replica_copy_job,
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
    from images.models import Image, ImageReplica

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

    from images.services.progress import Heartbeat

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
    from .selectors import forget_usage

    forget_usage(storage=replica.storage)
