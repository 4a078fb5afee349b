"""Starting, failing, cancelling and cleaning up an import. Receiving the bytes is in receiving.py,
the work after the last byte (inspection, conversion, storing) in pipeline.py.

An import: `image_import_create` makes the Image (`uploading/queued`) and its UploadSession;
`upload_begin` accepts the file's length against the tenant's quota and the free space before the first
byte; an `ImportReceiver` takes the bytes; a job finishes. Every error ends in `import_fail`, which moves
the image to `failed` with a message and removes what the import left (staging files, partial replicas).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import django_rq
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext_noop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from imageconsole.core.sizes import sizes_apart
from imageconsole.core.words import gettext as _
from storage.backends import StorageError, get_backend
from tenants.models import OperationLog
from tenants.oplog import word
from tenants.services import log, quota_check, quota_lock

from .. import conf
from ..models import Image, ImageReplica, UploadSession
from .transitions import TransitionNotAllowed, image_transition

logger = logging.getLogger("images.imports")

CONVERTED_FORMATS = frozenset({"vmdk", "vhd", "vhdx", "ova"})
# Imports whose bytes a worker fetches (images.fetch): from a URL, or a file found on a storage's mount.
FETCHED_SOURCES = frozenset({Image.Source.URL, Image.Source.STORAGE_SCAN})
JOB_TIMEOUT = 12 * 3600


class ImportNotAccepted(Exception):
    """An import cannot take this request; the message says why. `status` is the HTTP status to answer."""

    status = 409

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


def needs_conversion(source_format: str) -> bool:
    return source_format in CONVERTED_FORMATS


def staging_dir(image_id) -> Path:
    return conf.staging_root() / str(image_id)


def size_limit(image: Image) -> int:
    """The largest virtual size the image may have: its target size, else the wizard's maximum."""
    return image.target_size or conf.max_virtual_size()


# --- create -------------------------------------------------------------------------------------------


def image_import_create(
    *, tenant, fields: dict, actor=None, request=None, upload_length: int | None = None, url: str = ""
) -> Image:
    """Create an image in `uploading/queued` and its UploadSession, inside the tenant's quota.

    `fields` are the Image's fields (the wizard form's `image_fields()`). A URL import starts its fetch
    job when the transaction commits; an upload waits for its bytes (tus or PUT).
    """
    fields = dict(fields)
    source_format = fields.get("source_format") or fields["disk_format"]
    storage = fields["storage"]
    fields["source_format"] = source_format
    if needs_conversion(source_format):
        fields["disk_format"] = storage.effective_target_format
    with transaction.atomic():
        quota_lock(tenant=tenant)
        quota_check(tenant=tenant, add_images=1, add_bytes=upload_length or 0)
        image = Image(
            tenant=tenant,
            owner=actor if actor is not None and getattr(actor, "pk", None) else None,
            status=Image.Status.UPLOADING,
            stage=Image.Stage.QUEUED,
            **fields,
        )
        if upload_length:
            check_room(image=image, length=upload_length)
            image.size = upload_length
            image.bytes_total = upload_length
        image.full_clean(exclude=["owner", "tenant", "storage", "project_group"])
        image.save()
        session = UploadSession(
            image=image,
            length=upload_length,
            expires_at=timezone.now() + timedelta(hours=conf.upload_expiry_hours()),
        )
        if image.source in FETCHED_SOURCES:
            from ..fetch import split_secret

            session.source_url, session.secret_encrypted = split_secret(url)
            session.expires_at = None
            image.job_id = uuid.uuid4().hex
            image.save(update_fields=["job_id"])
        session.save()
        log(
            action="image.import",
            tenant=tenant,
            actor=actor,
            target=image,
            result=OperationLog.Result.STARTED,
            message_code=gettext_noop("%(source)s: %(format)s %(url)s"),
            params={
                "source": word(Image.Source(image.source).label, "Image source"),
                "format": source_format,
                "url": session.source_url,
            },
            request=request,
        )
        if image.source in FETCHED_SOURCES:
            job_id = image.job_id
            transaction.on_commit(lambda: enqueue_job("fetch", image_id=image.pk, job_id=job_id))
    return image


def check_room(*, image: Image, length: int) -> None:
    """Refuse `length` bytes that cannot fit: in the target size (raw, ISO), the storage, or staging."""
    if image.source_format in ("raw", "iso") and length > size_limit(image):
        raise ValidationError(
            _("The file is %(size)s, larger than the target size of %(limit)s.")
            % {"size": filesizeformat(length), "limit": filesizeformat(size_limit(image))},
            code="too_large",
        )
    try:
        get_backend(image.storage).check_capacity(length)
    except StorageError as error:
        raise ValidationError(str(error), code="storage_full") from error
    if needs_conversion(image.source_format):
        root = conf.staging_root()
        root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root).free
        if free < length:
            free_shown, size_shown = sizes_apart(free, length)
            raise ValidationError(
                _(
                    "The staging area has %(free)s free and the file needs %(size)s before it is converted. "
                    "Ask an administrator to free space."
                )
                % {"free": free_shown, "size": size_shown},
                code="staging_full",
            )


def upload_begin(
    *, image_id, length: int, filename: str = "", allow_source: str = Image.Source.UPLOAD
) -> UploadSession:
    """Accept the length of an upload (tus creation, or the start of a PUT) before its first byte.

    Checks the tenant's quota (the image's size reserves the bytes) and the free space. A session
    that received nothing yet may change its length (the user picked another file); a PUT restarts.
    Raises ValidationError (quota, space) or ImportNotAccepted (the image takes no upload).
    """
    if length is None or length < 0:
        raise ImportNotAccepted(_("The upload's length is missing."), status=400)
    with transaction.atomic():
        image = (
            Image.objects.select_for_update(of=("self",)).select_related("storage", "tenant").get(pk=image_id)
        )
        session = UploadSession.objects.select_for_update().get(image=image)
        if image.status != Image.Status.UPLOADING or session.cancel_requested:
            raise ImportNotAccepted(
                image.error or _("The image is no longer importing; import it again."), status=410
            )
        receiving = (Image.Stage.QUEUED, Image.Stage.RECEIVING, Image.Stage.DOWNLOADING)
        if image.source != allow_source or image.stage not in receiving:
            raise ImportNotAccepted(
                _("This image takes no upload now (%(stage)s).") % {"stage": image.get_stage_display()}
            )
        if session.offset and session.length != length:
            raise ImportNotAccepted(
                _(
                    "An upload of %(size)s is in progress for this image; a file of another size cannot continue "
                    "it. Cancel the import and start again."
                )
                % {"size": filesizeformat(session.length or 0)}
            )
        quota_lock(tenant=image.tenant)
        quota_check(tenant=image.tenant, add_bytes=max(length - image.size, 0))
        check_room(image=image, length=length)
        session.length = length
        if filename:
            session.filename = filename[:255]
        session.expires_at = timezone.now() + timedelta(hours=conf.upload_expiry_hours())
        session.save(update_fields=["length", "filename", "expires_at", "updated_at"])
        Image.objects.filter(pk=image.pk).update(size=length, bytes_total=length, updated_at=timezone.now())
    return session


def import_storage_set(*, image: Image, storage, actor=None, request=None) -> Image:
    """Store a queued upload on another storage, before its first byte (the Image API's
    `X-Image-Meta-Store` arrives with the data, not with the image). Raises ImportNotAccepted once
    bytes have arrived; the caller checks that the tenant may import to `storage`."""
    with transaction.atomic():
        image = Image.objects.select_for_update(of=("self",)).select_related("storage").get(pk=image.pk)
        if image.storage_id == storage.pk:
            return image
        session = UploadSession.objects.filter(image=image).first()
        if (
            image.status != Image.Status.UPLOADING
            or image.stage != Image.Stage.QUEUED
            or session is None
            or session.offset
            or ImageReplica.objects.filter(image=image).exists()
        ):
            raise ImportNotAccepted(
                _("The image's data is already going to %(storage)s; its storage cannot change now.")
                % {"storage": image.storage.name if image.storage else "-"}
            )
        before = image.storage.name if image.storage else "-"
        image.storage = storage
        changed = ["storage", "updated_at"]
        if needs_conversion(image.source_format):
            image.disk_format = storage.effective_target_format
            changed.append("disk_format")
        image.save(update_fields=changed)
        log(
            action="image.update",
            tenant=image.tenant,
            actor=actor,
            target=image,
            message_code=gettext_noop("Changed %(fields)s: %(values)s"),
            params={
                "fields": [word(Image._meta.get_field("storage").verbose_name)],
                "values": f"{before} → {storage.name}",
            },
            request=request,
        )
    return image


# --- jobs --------------------------------------------------------------------------------------------

JOBS = {
    # kind: (function path, queue)
    "finish": ("images.jobs.import_finish_job", "imports"),
    "convert": ("images.jobs.import_convert_job", "convert"),
    "fetch": ("images.jobs.import_fetch_job", "imports"),
    "decompress": ("images.jobs.import_decompress_job", "imports"),
}


def enqueue_job(kind: str, *, image_id, job_id: str) -> None:
    func, queue = JOBS[kind]
    django_rq.get_queue(queue).enqueue(
        func, image_id=str(image_id), job_id=job_id, job_timeout=JOB_TIMEOUT, failure_ttl=7 * 86400
    )


# The job id of an image that the web request which sent its last byte finishes itself (an upload stored
# as it arrived): no RQ job has it. The reconciler takes the request's upload lock, or the heartbeat of
# its finish, for the job being alive (reconcile.request_liveness).
REQUEST_JOB_PREFIX = "request-"


def request_job_id() -> str:
    return REQUEST_JOB_PREFIX + uuid.uuid4().hex


def import_hand_over(*, image_id, kind: str, enqueue: bool = True, job_id: str | None = None) -> None:
    """The bytes are in: the image waits for its job (`finish` or `convert`) in stage inspecting.
    `job_id`: the running job, or the request (REQUEST_JOB_PREFIX), that takes the next step itself (a URL
    fetch or an upload finishing what it stored): nothing is enqueued, and the reconciler watches it."""
    if job_id is not None:
        Image.objects.filter(pk=image_id, status=Image.Status.UPLOADING).update(
            stage=Image.Stage.INSPECTING, progress=0, job_id=job_id, updated_at=timezone.now()
        )
        return
    job_id = uuid.uuid4().hex
    updated = Image.objects.filter(pk=image_id, status=Image.Status.UPLOADING).update(
        stage=Image.Stage.INSPECTING, progress=0, job_id=job_id, updated_at=timezone.now()
    )
    if updated and enqueue:
        transaction.on_commit(lambda: _enqueue_or_leave(kind, image_id=image_id, job_id=job_id))


def _enqueue_or_leave(kind: str, *, image_id, job_id: str) -> None:
    """The bytes are committed whatever Redis does: when it cannot take the job now, the reconciler
    finds the job missing and enqueues it (within a minute of Redis coming back)."""
    try:
        enqueue_job(kind, image_id=image_id, job_id=job_id)
    except (RedisConnectionError, RedisTimeoutError):
        logger.warning("Redis does not answer: the %s job of %s is left to the reconciler", kind, image_id)


# --- failure, cancel, cleanup ------------------------------------------------------------------------


def import_fail(*, image_id, message: str, actor=None, request=None) -> bool:
    """End an import in `failed` with `message`; its staging files and partial replicas are removed.

    Returns False when the image was no longer importing (already failed, cancelled, or done).
    """
    try:
        image_transition(
            image_id=image_id,
            to=Image.Status.FAILED,
            allowed_from=[Image.Status.UPLOADING],
            action="image.import",
            actor=actor,
            request=request,
            result=OperationLog.Result.FAILURE,
            message=message,
            changes=_failed_changes(message, reason=Image.FailureReason.ERROR),
            after_commit=lambda: enqueue_cleanup(image_id=image_id),
        )
    except TransitionNotAllowed:
        return False
    except Image.DoesNotExist:
        return False
    logger.info("import of %s failed: %s", image_id, message)
    return True


def _failed_changes(message: str, *, reason: str) -> dict:
    # Nothing is stored: the bytes reserved against the quota are given back.
    return {"error": message, "failure_reason": reason, "stage": Image.Stage.NONE, "progress": 0, "size": 0}


def import_cancel(*, image: Image, actor=None, request=None) -> Image:
    """Cancel an import at any stage: the image fails at once; a request or job in flight notices within
    two seconds and stops; what it left is removed."""
    who = actor.get_username() if actor is not None and getattr(actor, "pk", None) else _("an operator")
    message = _("The import was cancelled by %(user)s.") % {"user": who}
    log_params = {"user": who}
    with transaction.atomic():
        UploadSession.objects.filter(image_id=image.pk).update(
            cancel_requested=True, updated_at=timezone.now()
        )
        image = image_transition(
            image_id=image.pk,
            to=Image.Status.FAILED,
            allowed_from=[Image.Status.UPLOADING],
            action="image.cancel",
            actor=actor,
            request=request,
            message_code=gettext_noop("The import was cancelled by %(user)s."),
            params=log_params,
            changes=_failed_changes(message, reason=Image.FailureReason.CANCELLED),
            after_commit=lambda: enqueue_cleanup(image_id=image.pk),
        )
    return image


def enqueue_cleanup(*, image_id) -> None:
    try:
        django_rq.get_queue("default").enqueue("images.jobs.import_cleanup_job", image_id=str(image_id))
    except Exception:  # noqa: BLE001 - Redis down: the reconciler removes the leftovers later
        logger.warning(
            "could not enqueue the cleanup of %s; the reconciler will do it", image_id, exc_info=True
        )


def import_cleanup(*, image_id) -> bool:
    """Remove what an ended import left: staging files, and what it stored under its replicas' keys
    (partial replicas, chunks or parts of a write that never committed; chunks other images use stay).

    Safe to run twice and for any image; an image still importing is left alone. Returns False when
    something could not be removed (the storage did not answer): data cleanup removes it later.
    """
    image = Image.objects.filter(pk=image_id).select_related("storage").first()
    if image is not None and image.status == Image.Status.UPLOADING:
        return True
    shutil.rmtree(staging_dir(image_id), ignore_errors=True)
    # Only a failed import's replicas are its leftovers; other images' unready replicas are copies
    # in progress (sync, migrate).
    if image is None or image.status != Image.Status.FAILED:
        return True
    removed = True
    replicas = list(
        ImageReplica.objects.filter(image=image)
        .exclude(state=ImageReplica.State.READY)
        .select_related("storage")
    )
    for replica in replicas:
        removed = delete_stored(storage=replica.storage, key=replica.key) and removed
        replica.delete()
    if image.storage is not None and not ImageReplica.objects.filter(image=image).exists():
        # A writer that had not committed yet has no replica row: the keys an import writes under.
        session = UploadSession.objects.filter(image=image).first()
        resumes = session.resumes if session is not None else 0
        keys = [str(image.pk), *(f"{image.pk}-r{n}" for n in range(1, resumes + 2))]
        for key in keys:
            if key not in {replica.key for replica in replicas}:
                removed = delete_stored(storage=image.storage, key=key) and removed
    UploadSession.objects.filter(image=image).exclude(secret_encrypted="").update(secret_encrypted="")
    return removed


def delete_stored(*, storage, key: str) -> bool:
    try:
        get_backend(storage).delete(key)
    except StorageError:
        logger.warning("could not delete %s from %s; data cleanup will", key, storage, exc_info=True)
        return False
    return True


def cancel_requested(image_id) -> bool:
    """True when the import was cancelled or ended: a request or job receiving for it must stop."""
    return not Image.objects.filter(
        pk=image_id, status=Image.Status.UPLOADING, upload__cancel_requested=False
    ).exists()


class CancelCheck:
    """`cancel_requested` for callbacks asked once per block: the database is asked at most every
    `interval` seconds (a cancel is still noticed well within two seconds)."""

    def __init__(self, image_id, *, interval: float = 0.5):
        self.image_id = image_id
        self.interval = interval
        self._checked = 0.0
        self._cancelled = False

    def __call__(self) -> bool:
        import time

        now = time.monotonic()
        if not self._cancelled and now - self._checked >= self.interval:
            self._checked = now
            self._cancelled = cancel_requested(self.image_id)
        return self._cancelled


def image_id_of(value) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def import_from_url(*, image: Image, url: str, actor=None, request=None) -> Image:
    """A queued upload that received nothing fetches its bytes from `url` instead (the OpenStack
    interoperable import's web-download): the same URL checks and fetch job as a URL import."""
    from ..fetch import URLRefused, split_secret, validate

    try:
        validate(url, allow_file=bool(actor is not None and getattr(actor, "is_staff", False)))
    except URLRefused as error:
        raise ValidationError(str(error), code="url_refused") from error
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        session = UploadSession.objects.select_for_update().get(image=image)
        if (
            image.status != Image.Status.UPLOADING
            or image.source != Image.Source.UPLOAD
            or image.stage != Image.Stage.QUEUED
            or session.offset
        ):
            raise ImportNotAccepted(_("Only an image that received no data yet can be imported from a URL."))
        session.source_url, session.secret_encrypted = split_secret(url)
        session.expires_at = None
        session.save(update_fields=["source_url", "secret_encrypted", "expires_at", "updated_at"])
        image.source = Image.Source.URL
        image.job_id = uuid.uuid4().hex
        image.save(update_fields=["source", "job_id", "updated_at"])
        log(
            action="image.import",
            tenant=image.tenant,
            actor=actor,
            target=image,
            result=OperationLog.Result.STARTED,
            message=f"{image.get_source_display()}: {image.source_format} {session.source_url}",
            request=request,
        )
        job_id = image.job_id
        transaction.on_commit(lambda: enqueue_job("fetch", image_id=image.pk, job_id=job_id))
    return image
