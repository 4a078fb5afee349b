"""Checks of Redis and of what runs on it: the workers per queue and the cron scheduler."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from rq import Queue, Worker
from rq.cron import CronScheduler

from images.services.progress import process_alive

from .base import Check, Status

WORKER_COMMAND = "manage.py rqworker imports convert default maintenance --with-scheduler"
CRON_COMMAND = "manage.py rqcron imageconsole.cron"


# Redis and the workers


def redacted(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def redis_url() -> str:
    config = next(iter(settings.RQ_QUEUES.values()))
    return config.get("URL", "")


def _connection(url: str) -> redis.Redis:
    # Short timeouts: a Redis behind a dead route must not hold the page or the command for minutes.
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)


def redis_check() -> tuple[list[Check], redis.Redis | None]:
    url = redis_url()
    area = "Redis"
    connection = _connection(url)
    try:
        info = connection.info("server")
    except redis.RedisError as error:
        return [
            Check(
                area,
                redacted(url),
                Status.PROBLEM,
                _(
                    "Cannot reach Redis at %(url)s: %(reason)s. No job can be queued or run: start "
                    "redis-server, or set REDIS_URL to the Redis the workers use."
                )
                % {"url": redacted(url), "reason": error},
            )
        ], None
    checks = [
        Check(
            area,
            redacted(url),
            Status.OK,
            _("Redis %(version)s answers.") % {"version": info["redis_version"]},
        )
    ]
    workers = Worker.all(connection=connection)
    if workers:
        checks.append(
            Check(
                area,
                _("shared with the workers"),
                Status.OK,
                ngettext(
                    "%(count)d worker is registered in this Redis: %(names)s.",
                    "%(count)d workers are registered in this Redis: %(names)s.",
                    len(workers),
                )
                % {"count": len(workers), "names": ", ".join(sorted(_worker_label(w) for w in workers))},
            )
        )
    else:
        checks.append(
            Check(
                area,
                _("shared with the workers"),
                Status.PROBLEM,
                _(
                    "No worker is registered in this Redis: the workers are stopped, or they use another "
                    "Redis. Start them with REDIS_URL=%(url)s: %(command)s"
                )
                % {"url": redacted(url), "command": WORKER_COMMAND},
            )
        )
    return checks, connection


def _worker_label(worker: Worker) -> str:
    return f"{worker.hostname}:{worker.pid}"


def worker_alive(worker: Worker) -> bool:
    """False when the worker's process is known to be gone (on this host), or it stopped beating."""
    if worker.hostname and worker.pid and not process_alive(worker.hostname, int(worker.pid)):
        return False
    beat = worker.last_heartbeat
    if beat is None:
        return True
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return datetime.now(UTC) - beat < timedelta(seconds=worker.worker_ttl + 60)


def workers_check(connection: redis.Redis) -> tuple[list[Check], dict[str, dict[str, str]]]:
    """A check per queue, and the live workers per queue (name: host:pid), for the staging probe."""
    checks, live = [], {}
    area = _("Workers")
    for name in settings.RQ_QUEUES:
        queue = Queue(name, connection=connection)
        workers = Worker.all(queue=queue)
        alive = [w for w in workers if worker_alive(w)]
        dead = [w for w in workers if w.name not in {a.name for a in alive}]
        waiting = queue.count
        if alive:
            live[name] = {w.name: _worker_label(w) for w in alive}
            detail = _("Alive: %(names)s.") % {"names": ", ".join(sorted(_worker_label(w) for w in alive))}
            detail += " " + ngettext("%(count)d job waiting.", "%(count)d jobs waiting.", waiting) % {
                "count": waiting
            }
            status = Status.OK
        else:
            detail = ngettext(
                "No live worker listens on this queue: its %(waiting)d job waits. Start one: %(command)s",
                "No live worker listens on this queue: its %(waiting)d jobs wait. Start one: %(command)s",
                waiting,
            ) % {"waiting": waiting, "command": WORKER_COMMAND}
            status = Status.PROBLEM
        if dead:
            detail += " " + _("Registered but stopped (process gone or silent): %(names)s.") % {
                "names": ", ".join(sorted(_worker_label(w) for w in dead))
            }
            status = Status.PROBLEM if not alive else Status.WARNING
        checks.append(Check(area, name, status, detail))
    return checks, live


def cron_check(connection: redis.Redis) -> Check:
    area = _("Periodic jobs")
    schedulers = [
        s
        for s in CronScheduler.all(connection)
        if not s.hostname or process_alive(s.hostname, int(s.pid or 0))
    ]
    if schedulers:
        names = ", ".join(sorted(f"{s.hostname}:{s.pid}" for s in schedulers))
        return Check(area, "rqcron", Status.OK, _("Scheduled by %(names)s.") % {"names": names})
    return Check(
        area,
        "rqcron",
        Status.PROBLEM,
        _(
            "No cron scheduler runs: the reconciler and the sweeps never run, so imports whose worker "
            "died stay in progress. Start exactly one: %(command)s"
        )
        % {"command": CRON_COMMAND},
    )
