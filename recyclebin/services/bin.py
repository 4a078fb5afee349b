"""Restore and expunge, one image or many, the expunge's work, retention expiry and its sweep.

Expunge is two steps: `deleted` → `deleting` (a row-locked transition, logged with who asked), then a
`maintenance` job removes the image's download links and exports (`images.hooks.run_before_expunge`),
every replica's data from its storage, and finally the row. Each step can run again: a worker killed in
the middle leaves `deleting`, and the reconciler (`expunges_reconcile`) enqueues the job again.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import django_rq
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from images import conf as images_conf
from images import hooks
from images.models import Image, ImageReplica
from images.services.batch import BATCH_CHUNK, BatchItem, BatchResult, batch_rows, wanted_ids
from images.services.progress import Heartbeat
from images.services.reconcile import ALIVE, job_liveness
from images.services.transitions import (
    STATUS_PATH,
    TransitionNotAllowed,
    image_transition,
    images_transition_bulk,
    status_word,
)
from storage.backends import StorageError, get_backend
from tenants.models import OperationLog, Quota, Tenant
from tenants.oplog import joined, size
from tenants.services import log, log_many, quota_lock, tenant_usage

logger = logging.getLogger("recyclebin")

QUEUE = "maintenance"
# An image moved to `deleting` whose job id is not written yet (its enqueue runs when the transaction
# commits) is left alone this long before the reconciler enqueues the expunge itself.
UNQUEUED_GRACE = timedelta(seconds=30)


class RestoreRefused(ValidationError):
    """A restore would pass the tenant's image-count quota; the message names the quota."""


def _restore_changes() -> dict:
    return {"deleted_at": None, "deleted_by": None, "purge_after": None, "restore_status": None, "error": ""}


def restore_target(image: Image) -> str:
    """The status a restore gives back: the one the image had when it was deleted. Images deleted before
    that was recorded are available when they hold stored data, failed otherwise."""
    if image.restore_status:
        return image.restore_status
    ready = ImageReplica.objects.filter(image_id=image.pk, state=ImageReplica.State.READY).exists()
    return Image.Status.AVAILABLE if ready else Image.Status.FAILED


def _image_headroom(tenant: Tenant) -> tuple[int | None, int, int | None]:
    """(images the quota still allows, images counted, the quota's image limit); None: no limit."""
    quota = Quota.objects.filter(tenant=tenant).first()
    usage = tenant_usage(tenant=tenant)
    if quota is None or quota.max_images is None:
        return None, usage.images, None
    return max(quota.max_images - usage.images, 0), usage.images, quota.max_images


def _quota_message(*, limit: int, used: int) -> str:
    return ngettext(
        "The tenant's image quota allows %(limit)d image and %(used)d exist, so restoring it would pass "
        "the quota. Delete images or ask an administrator to raise the quota.",
        "The tenant's image quota allows %(limit)d images and %(used)d exist, so restoring it would pass "
        "the quota. Delete images or ask an administrator to raise the quota.",
        limit,
    ) % {"limit": limit, "used": used}


def _quota_refusal(*, limit: int, used: int) -> dict:
    """The operation log's words for a restore the image-count quota refused (worded for each reader)."""
    return {
        "message_code": gettext_noop("Refused by the image quota: %(used)s of %(limit)s images exist."),
        "params": {"used": used, "limit": limit},
    }


def image_restore(*, image: Image, actor=None, request=None) -> Image:
    """Give a deleted image back the status it had (available or failed; enabled as it was), unless the
    tenant's image-count quota is full."""
    with transaction.atomic():
        quota_lock(tenant=image.tenant)
        locked = Image.objects.select_for_update().get(pk=image.pk)
        if locked.status != Image.Status.DELETED:
            raise TransitionNotAllowed(locked, Image.Status.AVAILABLE)
        headroom, used, limit = _image_headroom(locked.tenant)
        if headroom is None or headroom >= 1:
            return image_transition(
                image_id=locked.pk,
                to=restore_target(locked),
                allowed_from=[Image.Status.DELETED],
                action="image.restore",
                actor=actor,
                request=request,
                changes=_restore_changes(),
            )
    # Logged once the lock is released, so that raising the refusal does not roll the entry back.
    log(
        action="image.restore",
        tenant=locked.tenant,
        actor=actor,
        target=locked,
        result=OperationLog.Result.FAILURE,
        request=request,
        **_quota_refusal(limit=limit, used=used),
    )
    message = _("“%(name)s” cannot be restored. %(reason)s") % {
        "name": locked.name,
        "reason": _quota_message(limit=limit, used=used),
    }
    raise RestoreRefused(message, code="quota_images")


def image_expunge(*, image: Image, actor=None, request=None) -> Image:
    """Destroy an image in the recycle bin: `deleting` now, its data and row removed by a job."""
    return image_transition(
        image_id=image.pk,
        to=Image.Status.DELETING,
        allowed_from=[Image.Status.DELETED],
        action="image.expunge",
        actor=actor,
        request=request,
        result=OperationLog.Result.STARTED,
        after_commit=lambda: enqueue_expunge(image_id=image.pk),
    )


def image_expire(*, image_id, now=None) -> bool:
    """Retention expiry: expunge the image if it is still in the bin and its time has come (the policy
    may have moved or cleared it since the expiry was scheduled). True when the expunge started."""
    now = now or timezone.now()
    with transaction.atomic():
        due = (
            Image.objects.select_for_update()
            .filter(pk=image_id, status=Image.Status.DELETED, purge_after__lte=now)
            .first()
        )
        if due is None:
            early = (
                Image.objects.filter(pk=image_id, status=Image.Status.DELETED, purge_after__gt=now)
                .values_list("purge_after", flat=True)
                .first()
            )
            if early is not None:
                # Woken before its time (a clock a little behind the scheduler's): wait again.
                transaction.on_commit(lambda: schedule_expiry(image_id=image_id, purge_after=early))
            return False
        image_transition(
            image_id=due.pk,
            to=Image.Status.DELETING,
            allowed_from=[Image.Status.DELETED],
            action="image.expire",
            result=OperationLog.Result.STARTED,
            message_code=gettext_noop("The retention period ended on %(when)s."),
            params={"when": due.purge_after.isoformat()},
            after_commit=lambda: enqueue_expunge(image_id=due.pk),
        )
    return True


def expiry_job_id(image_id) -> str:
    return f"recyclebin-expire-{image_id}"


def schedule_expiry(*, image_id, purge_after: datetime) -> None:
    """RQ's scheduler runs the expiry at `purge_after`. Scheduling again moves the same job; a job whose
    time no longer matches the row does nothing, and the periodic sweep catches any job Redis lost."""
    # RQ's scheduler counts whole seconds: round up, so the job never runs before the time.
    at = purge_after.replace(microsecond=0) + timedelta(seconds=1) if purge_after.microsecond else purge_after
    try:
        django_rq.get_queue(QUEUE).enqueue_at(
            at, "recyclebin.jobs.image_expire_job", image_id=str(image_id), job_id=expiry_job_id(image_id)
        )
    except Exception:  # noqa: BLE001 - Redis down: the sweep expunges it when it is due
        logger.warning("could not schedule the expiry of %s; the sweep will", image_id, exc_info=True)


def expunge_heartbeat(image_id) -> str:
    return f"expunge-{image_id}"


def enqueue_expunge(*, image_id) -> str | None:
    """Queue the expunge job of an image in `deleting` under a new job id kept on the row (so the
    reconciler can tell a lost job from a running one)."""
    job_id = f"recyclebin-expunge-{uuid.uuid4().hex}"
    if not Image.objects.filter(pk=image_id, status=Image.Status.DELETING).update(job_id=job_id):
        return None
    try:
        django_rq.get_queue(QUEUE).enqueue(
            "recyclebin.jobs.image_expunge_job", image_id=str(image_id), job_id=job_id
        )
    except Exception:  # noqa: BLE001 - Redis down: the reconciler enqueues it again
        logger.warning("could not enqueue the expunge of %s; the reconciler will", image_id, exc_info=True)
        return None
    return job_id


def image_expunge_run(*, image_id) -> bool:
    """The expunge job's work: links and exports, every replica's data, then the row. Returns True when
    this call removed the row; False when there was nothing (left) to do. Safe to run twice at once."""
    image = Image.objects.filter(pk=image_id, status=Image.Status.DELETING).first()
    if image is None:
        return False
    storages = []
    with Heartbeat(expunge_heartbeat(image.pk)):
        hooks.run_before_expunge(image_id=image.pk, tenant_id=image.tenant_id)
        for replica in ImageReplica.objects.filter(image_id=image.pk).select_related("storage"):
            try:
                get_backend(replica.storage).delete(replica.key)
            except StorageError as error:
                message = _(
                    "Its data could not be removed from %(storage)s: %(reason)s It is tried again."
                ) % {
                    "storage": replica.storage.name,
                    "reason": error,
                }
                Image.objects.filter(pk=image.pk, status=Image.Status.DELETING).update(error=message)
                raise
            ImageReplica.objects.filter(pk=replica.pk).delete()
            storages.append(replica.storage.name)
        shutil.rmtree(images_conf.staging_root() / str(image.pk), ignore_errors=True)
        try:
            with transaction.atomic():
                locked = (
                    Image.objects.select_for_update()
                    .filter(pk=image.pk, status=Image.Status.DELETING)
                    .first()
                )
                if locked is None:
                    return False
                log(
                    action="image.expunge",
                    tenant=locked.tenant,
                    target=locked,
                    message_code=gettext_noop(
                        "Expunged: %(size)s given back to the quota; data removed from: %(storages)s."
                    ),
                    params={"size": size(locked.size), "storages": ", ".join(storages) or "—"},
                )
                locked.delete()
        except ProtectedError as error:
            names = ", ".join(sorted({str(obj) for obj in error.protected_objects})[:5])
            message = _("It is still referenced by %(names)s; it is tried again.") % {"names": names}
            Image.objects.filter(pk=image.pk).update(error=message)
            raise
    return True


@dataclass
class ReconcileReport:
    resumed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"expunge resumed (job lost)": self.resumed, "expunge started (retention ended)": self.expired}


def expunges_reconcile(*, now=None) -> ReconcileReport:
    """Images in `deleting` whose expunge job is gone (Redis lost it, or its worker died): enqueued again."""
    now = now or timezone.now()
    report = ReconcileReport()
    for pk, job_id, updated_at in Image.objects.filter(status=Image.Status.DELETING).values_list(
        "pk", "job_id", "updated_at"
    ):
        if not job_id and updated_at > now - UNQUEUED_GRACE:
            continue
        if job_id and job_liveness(job_id, expunge_heartbeat(pk)) == ALIVE:
            continue
        if enqueue_expunge(image_id=pk):
            report.resumed.append(str(pk))
            logger.info("re-enqueued the expunge of %s (its job was lost)", pk)
    return report


def reconcile_hook() -> dict[str, list[str]]:
    """Run by the images reconciler (images.hooks.register_reconciler)."""
    return expunges_reconcile().as_dict()


def recyclebin_sweep(*, now=None) -> ReconcileReport:
    """The periodic sweep (every minute): expunge what is due, even if its scheduled job was lost with
    Redis, and resume lost expunges."""
    now = now or timezone.now()
    report = expunges_reconcile(now=now)
    due = Image.objects.filter(status=Image.Status.DELETED, purge_after__lte=now).values_list("pk", flat=True)
    for pk in list(due):
        if image_expire(image_id=pk, now=now):
            report.expired.append(str(pk))
    return report


# --- many images ---------------------------------------------------------------------------------------


def _path(statuses) -> dict:
    return joined([status_word(status) for status in statuses], " → ")


def _not_in_bin(status: str) -> str:
    if status == Image.Status.DELETING:
        return _("It is being destroyed.")
    return _("It is not in the recycle bin.")


def _batch(
    *,
    tenant: Tenant,
    scope: QuerySet[Image],
    image_ids,
    actor,
    request,
    action: str,
    decide,
    move,
    done_log,
    after_commit=None,
) -> BatchResult:
    """Shared body of batch restore and batch expunge: one transaction, rows locked and moved in bulk,
    a result and an OperationLog row per image asked for."""
    wanted = wanted_ids(image_ids)
    result = BatchResult()
    now = timezone.now()
    with transaction.atomic():
        rows = batch_rows(
            scope.filter(tenant=tenant), wanted, ("pk", "name", "status", "restore_status", "tenant_id")
        )
        refused = decide(rows)  # pk -> reason, for images that are in the bin but may not move
        candidates = [
            row["pk"]
            for row in rows.values()
            if row["status"] == Image.Status.DELETED and row["pk"] not in refused
        ]
        moved = set(move(candidates, rows, now))
        order = wanted if wanted is not None else list(rows)
        entries = []
        for key in order:
            row = rows.get(key)
            if row is None:
                result.items.append(BatchItem(id=key, name="", done=False, reason=_("Not found.")))
                continue
            pk = row["pk"]
            if pk in moved:
                item = BatchItem(id=pk, name=row["name"], done=True)
            elif pk in refused:
                item = BatchItem(id=pk, name=row["name"], done=False, reason=refused[pk])
            elif row["status"] != Image.Status.DELETED:
                item = BatchItem(id=pk, name=row["name"], done=False, reason=_not_in_bin(row["status"]))
            else:
                item = BatchItem(
                    id=pk, name=row["name"], done=False, reason=_("It changed meanwhile; try again.")
                )
            result.items.append(item)
            entry = {"tenant_id": tenant.pk, "target": Image(pk=pk, name=row["name"])}
            if item.done:
                # The path of statuses, worded for each reader ("Deleted → Available").
                result_code, path = done_log(row)
                entry.update(result=result_code, message_code=STATUS_PATH, params={"path": path})
            else:
                entry.update(result=OperationLog.Result.FAILURE, message=item.reason)
            entries.append(entry)
        log_many(action=action, entries=entries, actor=actor, request=request, batch_size=BATCH_CHUNK)
        if moved and after_commit is not None:
            ids = list(moved)
            transaction.on_commit(lambda: after_commit(ids))
    return result


def images_batch_restore(
    *, tenant: Tenant, scope: QuerySet[Image], image_ids=None, actor=None, request=None
) -> BatchResult:
    """Restore many images (`image_ids` of `scope`, or all of it), in the order asked, as far as the
    image-count quota allows; the rest are reported as refused, naming the quota."""
    targets: dict = {}

    def decide(rows):
        headroom, used, limit = _image_headroom(tenant)
        in_bin = [row for row in rows.values() if row["status"] == Image.Status.DELETED]
        refused = {}
        if headroom is not None:
            for row in in_bin[headroom:]:
                refused[row["pk"]] = _quota_message(limit=limit, used=used)
        return refused

    def move(candidates, rows, now):
        moved = []
        by_target: dict[str, list] = {}
        for pk in candidates:
            row = rows[str(pk)]
            target = row["restore_status"] or restore_target(Image(pk=pk, restore_status=""))
            targets[pk] = target
            by_target.setdefault(target, []).append(pk)
        for target, ids in by_target.items():
            for start in range(0, len(ids), BATCH_CHUNK):
                moved += images_transition_bulk(
                    tenant=tenant,
                    image_ids=ids[start : start + BATCH_CHUNK],
                    allowed_from=[Image.Status.DELETED],
                    path=[target],
                    now=now,
                    changes=_restore_changes(),
                )
        return moved

    def done_log(row):
        return OperationLog.Result.SUCCESS, _path([Image.Status.DELETED, targets[row["pk"]]])

    with transaction.atomic():
        quota_lock(tenant=tenant)
        return _batch(
            tenant=tenant,
            scope=scope,
            image_ids=image_ids,
            actor=actor,
            request=request,
            action="image.restore",
            decide=decide,
            move=move,
            done_log=done_log,
        )


def images_batch_expunge(
    *, tenant: Tenant, scope: QuerySet[Image], image_ids=None, actor=None, request=None
) -> BatchResult:
    """Destroy many images of the bin: each goes to `deleting` and gets its own expunge job."""

    def move(candidates, rows, now):
        moved = []
        for start in range(0, len(candidates), BATCH_CHUNK):
            moved += images_transition_bulk(
                tenant=tenant,
                image_ids=candidates[start : start + BATCH_CHUNK],
                allowed_from=[Image.Status.DELETED],
                path=[Image.Status.DELETING],
                now=now,
            )
        return moved

    def after_commit(ids):
        for pk in ids:
            enqueue_expunge(image_id=pk)

    return _batch(
        tenant=tenant,
        scope=scope,
        image_ids=image_ids,
        actor=actor,
        request=request,
        action="image.expunge",
        decide=lambda rows: {},
        move=move,
        done_log=lambda row: (
            OperationLog.Result.STARTED,
            _path([Image.Status.DELETED, Image.Status.DELETING]),
        ),
        after_commit=after_commit,
    )
