"""The reconciler: imports whose job is gone are resumed or failed, and orphaned staging is removed.

Run by `manage.py reconcile` and every minute by the cron scheduler (images/cron.py). Decisions:

- waiting for its upload (queued/receiving, no job): failed once the upload expired (tus expiration);
- its job is queued, or running with a fresh heartbeat: left alone;
- its job vanished before it ran (Redis lost it): enqueued again, once;
- its job died (worker killed, job failed or timed out, heartbeat gone, or its process no longer
  exists on this host): failed with a message, its staging files and partial replicas removed;
- a staging directory whose image is not importing: removed;
- a sync or migrate copy whose job is gone: its replica failed with a message.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import F
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from imageconsole.core.queues import connection as redis_connection
from imageconsole.core.words import gettext as _

from .. import conf, hooks
from ..models import Image, ImageReplica, UploadSession
from .imports import (
    FETCHED_SOURCES,
    REQUEST_JOB_PREFIX,
    enqueue_job,
    import_cleanup,
    import_fail,
    needs_conversion,
)
from .progress import heartbeat_of, process_alive
from .receiving import upload_in_progress

logger = logging.getLogger("images.reconcile")

ALIVE, MISSING, DEAD = "alive", "missing", "dead"
WAITING_STAGES = (Image.Stage.QUEUED, Image.Stage.RECEIVING)
MAX_RESUMES = 1


@dataclass
class ReconcileReport:
    failed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    staging_removed: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    copies_failed: list[str] = field(default_factory=list)
    # What the reconcilers of apps above this one did (images.hooks.register_reconciler).
    other: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self):
        return _(
            "failed %(failed)d, resumed %(resumed)d, expired uploads %(expired)d, staging directories "
            "removed %(staging)d, leftovers cleaned %(cleaned)d, lost copies failed %(copies)d"
        ) % {
            "copies": len(self.copies_failed),
            "failed": len(self.failed),
            "resumed": len(self.resumed),
            "expired": len(self.expired),
            "staging": len(self.staging_removed),
            "cleaned": len(self.cleaned),
        }


def job_liveness(job_id: str, heartbeat: str) -> str:
    """ALIVE, MISSING (no such job: never ran or Redis lost it) or DEAD, for the job `job_id` whose
    process beats under the name `heartbeat` (an image id, or `replica_heartbeat(pk)`)."""
    if not job_id:
        return MISSING
    connection = redis_connection("imports")
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return MISSING
    status = job.get_status(refresh=True)
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
        return ALIVE
    if status != JobStatus.STARTED:
        return DEAD  # finished, failed, stopped or cancelled, and its row still says it is working
    beat = heartbeat_of(heartbeat)
    if beat is None:
        started = job.started_at
        grace = timedelta(seconds=conf.heartbeat_seconds())
        if started is not None and timezone.now() - _aware(started) < grace:
            return ALIVE  # just started; its first beat is on its way
        return DEAD
    return ALIVE if process_alive(*beat) else DEAD


def request_liveness(image_id: str) -> str:
    """ALIVE or MISSING for an image that the web request which sent its last byte finishes itself
    (imports.REQUEST_JOB_PREFIX): alive while that request holds the upload's lock, or while the finish's
    heartbeat beats from a process that exists. Once neither does, the finish either ended (the image
    is no longer importing, and nothing is done) or its process died before it made the image available:
    MISSING, and the finish is enqueued as for a job Redis lost, with nobody left to race it."""
    if upload_in_progress(image_id):
        return ALIVE
    beat = heartbeat_of(image_id)
    return ALIVE if beat is not None and process_alive(*beat) else MISSING


def _aware(moment):
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, timezone.utc)


def _job_kind(image: Image) -> str:
    if image.source in FETCHED_SOURCES and image.stage in (Image.Stage.QUEUED, Image.Stage.DOWNLOADING):
        return "fetch"
    session = getattr(image, "upload", None)
    if session is not None and session.compression and image.stage == Image.Stage.INSPECTING:
        return "decompress"
    return "convert" if needs_conversion(image.source_format) else "finish"


def lost_message(*, kept: bool = False) -> str:
    if kept:
        return _(
            "The import stopped unexpectedly: the worker processing it was lost (stopped, killed or "
            "restarted). Part of what it stored could not be removed yet (the storage did not answer); the "
            "next data cleanup removes it. Delete this image and import it again."
        )
    return _(
        "The import stopped unexpectedly: the worker processing it was lost (stopped, killed or restarted). "
        "Nothing was kept; delete this image and import it again."
    )


def reconcile(*, now=None) -> ReconcileReport:
    now = now or timezone.now()
    report = ReconcileReport()
    importing = Image.objects.filter(status=Image.Status.UPLOADING).select_related("upload")
    for image in importing.iterator():
        session = getattr(image, "upload", None)
        waiting = image.source == Image.Source.UPLOAD and image.stage in WAITING_STAGES
        if waiting:
            expired = session is not None and session.expires_at is not None and session.expires_at < now
            if expired and not upload_in_progress(image.pk):
                hours = conf.upload_expiry_hours()
                message = _(
                    "The upload was not completed within %(hours)g hours, so it expired. Import the image again."
                ) % {"hours": hours}
                if import_fail(image_id=image.pk, message=message):
                    report.expired.append(str(image.pk))
            continue
        if image.job_id.startswith(REQUEST_JOB_PREFIX):
            state = request_liveness(str(image.pk))
        else:
            state = job_liveness(image.job_id, str(image.pk))
        if state == ALIVE:
            continue
        if state == MISSING and session is not None and session.attempts < MAX_RESUMES:
            job_id = uuid.uuid4().hex
            resumed = Image.objects.filter(
                pk=image.pk, status=Image.Status.UPLOADING, job_id=image.job_id
            ).update(job_id=job_id)
            if not resumed:
                continue  # its job or request ended meanwhile (available, failed, cancelled)
            UploadSession.objects.filter(pk=session.pk).update(attempts=F("attempts") + 1)
            enqueue_job(_job_kind(image), image_id=image.pk, job_id=job_id)
            report.resumed.append(str(image.pk))
            logger.info("re-enqueued the import of %s (its job was lost before it ran)", image.pk)
            continue
        if import_fail(image_id=image.pk, message=lost_message()):
            report.failed.append(str(image.pk))
            if not import_cleanup(image_id=image.pk):
                # "Nothing was kept" only when it is true.
                Image.objects.filter(pk=image.pk, status=Image.Status.FAILED).update(
                    error=lost_message(kept=True)
                )
    _fail_lost_copies(report)
    _remove_orphaned_staging(report)
    _clean_leftovers(report)
    report.other = hooks.run_reconcilers()
    return report


def _fail_lost_copies(report: ReconcileReport) -> None:
    """Sync and migrate copies (storage_data.replica_copy_start) whose job is gone: failed, so the
    replica does not say "syncing" for ever; the administrator can start the copy again. What the job
    had written to the target is unreferenced and goes with the target's next data cleanup."""
    from .storage_data import replica_copy_job_id, replica_heartbeat

    copying = ImageReplica.objects.filter(state=ImageReplica.State.SYNCING).exclude(
        image__status=Image.Status.UPLOADING  # an import's own replica: the import's job owns it
    )
    for replica in copying.select_related("image", "storage").iterator():
        if job_liveness(replica_copy_job_id(replica.pk), replica_heartbeat(replica.pk)) == ALIVE:
            continue
        message = _(
            "The copy to %(storage)s stopped unexpectedly: the worker running it was lost. Start the sync "
            "or migration again."
        ) % {"storage": replica.storage.name}
        changed = ImageReplica.objects.filter(pk=replica.pk, state=ImageReplica.State.SYNCING).update(
            state=ImageReplica.State.FAILED, error=message, updated_at=timezone.now()
        )
        if changed:
            report.copies_failed.append(str(replica.pk))
            logger.info("failed the lost copy of %s to %s", replica.image_id, replica.storage.name)


def _remove_orphaned_staging(report: ReconcileReport) -> None:
    root = conf.staging_root()
    if not root.is_dir():
        return
    for entry in root.iterdir():
        try:
            image_id = uuid.UUID(entry.name)
        except ValueError:
            continue
        if not entry.is_dir():
            continue
        if not Image.objects.filter(pk=image_id, status=Image.Status.UPLOADING).exists():
            shutil.rmtree(entry, ignore_errors=True)
            report.staging_removed.append(entry.name)


def _clean_leftovers(report: ReconcileReport) -> None:
    """Partial replicas of imports that ended (a cleanup job lost with Redis)."""
    leftovers = (
        ImageReplica.objects.exclude(state=ImageReplica.State.READY)
        .filter(image__status=Image.Status.FAILED)
        .values_list("image_id", flat=True)
        .distinct()
    )
    for image_id in list(leftovers):
        import_cleanup(image_id=image_id)
        report.cleaned.append(str(image_id))
