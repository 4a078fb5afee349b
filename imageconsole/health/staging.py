"""The staging area shared by web server and workers, and what only the workers can see (their
qemu-img, their access to each storage), learnt from a probe job on every queue."""

from __future__ import annotations

import time
import uuid

import redis
from django.conf import settings
from django.utils.translation import gettext as _
from rq import Queue

from imageconsole.core.words import os_reason
from storage.models import ImageStorage

from . import probe
from .base import Check, Status

# Staging, and what the workers see


def staging_checks(
    connection: redis.Redis | None,
    live_queues: dict[str, dict[str, str]],
    storages: list[ImageStorage],
    *,
    timeout: float,
) -> list[Check]:
    """Write a marker into STAGING_ROOT, ask a worker on every queue to read it (and to run qemu-img and
    write to each standalone storage), and report what each answered."""
    area = _("Staging")
    staging = settings.STAGING_ROOT
    token = uuid.uuid4().hex
    try:
        marker = probe.write_marker(staging, token)
    except OSError as error:
        return [
            Check(
                area,
                str(staging),
                Status.PROBLEM,
                _("The web server cannot write to STAGING_ROOT %(path)s: %(reason)s")
                % {"path": staging, "reason": os_reason(error)},
            )
        ]
    try:
        if connection is None:
            return [Check(area, str(staging), Status.WARNING, _("Not checked: Redis is unreachable."))]
        mounts = [(s.name, s.mount_path) for s in storages if s.enabled and s.is_standalone]
        jobs = {}
        for name in settings.RQ_QUEUES:
            if name not in live_queues:
                continue
            queue = Queue(name, connection=connection)
            jobs[name] = queue.enqueue(
                probe.worker_probe,
                kwargs={"marker": marker.name, "token": token, "storages": mounts},
                job_timeout=60,
                ttl=int(timeout) + 30,  # never left in a queue nobody serves
                result_ttl=300,
                failure_ttl=300,
            )
        answers = _wait(jobs, timeout)
    finally:
        marker.unlink(missing_ok=True)
    checks, worker_checks = [], []
    seen_workers = set()
    for name in settings.RQ_QUEUES:
        if name not in jobs:
            checks.append(Check(area, name, Status.WARNING, _("Not checked: no live worker on this queue.")))
            continue
        answer = answers.get(name)
        if answer is None:
            checks.append(
                Check(
                    area,
                    name,
                    Status.WARNING,
                    _("No answer from a worker on this queue within %(seconds)d s: busy, or stuck.")
                    % {"seconds": timeout},
                )
            )
            continue
        worker = live_queues[name].get(answer["worker_name"], answer["host"])
        if "failed" in answer:
            checks.append(
                Check(
                    area,
                    name,
                    Status.PROBLEM,
                    _("The check job failed on worker %(worker)s: %(reason)s")
                    % {"worker": worker, "reason": answer["failed"]},
                )
            )
            continue
        if answer["staging"]:
            checks.append(
                Check(
                    area,
                    name,
                    Status.PROBLEM,
                    _(
                        "Worker %(worker)s does not see the file the web server wrote into its staging "
                        "area (%(path)s): %(reason)s. Web server and workers need the same STAGING_ROOT, on a "
                        "filesystem they share."
                    )
                    % {"worker": worker, "path": staging, "reason": answer["staging"]},
                )
            )
        else:
            checks.append(
                Check(
                    area,
                    name,
                    Status.OK,
                    _("Worker %(worker)s shares the staging area %(path)s.")
                    % {"worker": worker, "path": staging},
                )
            )
        if worker in seen_workers:
            continue
        seen_workers.add(worker)
        version, ok = answer["qemu_img"]
        worker_checks.append(
            Check(
                "qemu-img",
                _("worker %(worker)s") % {"worker": worker},
                Status.OK if ok else Status.PROBLEM,
                version if ok else _("Not usable on this worker: %(reason)s") % {"reason": version},
            )
        )
        for storage_name, reason in answer["storages"]:
            if reason:
                worker_checks.append(
                    Check(
                        _("Storage"),
                        storage_name,
                        Status.PROBLEM,
                        _("Not writable by worker %(worker)s: %(reason)s")
                        % {"worker": worker, "reason": reason},
                    )
                )
    return checks + worker_checks


def _wait(jobs: dict, timeout: float) -> dict[str, dict]:
    answers, deadline = {}, time.monotonic() + timeout
    pending = dict(jobs)
    while pending and time.monotonic() < deadline:
        for name, job in list(pending.items()):
            result = job.latest_result()
            if result is not None:
                if result.type == result.Type.SUCCESSFUL:
                    answers[name] = {**result.return_value, "worker_name": result.worker_name}
                else:
                    reason = (result.exc_string or "").strip().splitlines()[-1:] or [str(result.type)]
                    answers[name] = {"failed": reason[0], "worker_name": result.worker_name, "host": ""}
                del pending[name]
        if pending:
            time.sleep(0.1)
    for job in pending.values():
        job.cancel()
    return answers
