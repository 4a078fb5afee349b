"""The checks behind `manage.py doctor` and the administrators' health panel."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import redis
from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from rq import Queue, Worker
from rq.cron import CronScheduler

from images.services.progress import process_alive
from storage.backends import StorageError, get_backend
from storage.models import ImageStorage

from . import probe

WORKER_COMMAND = "manage.py rqworker imports convert default maintenance --with-scheduler"
CRON_COMMAND = "manage.py rqcron imageconsole.cron"


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Check:
    area: str  # what is checked: "qemu-img", "Redis", "Workers", ... (translated)
    subject: str  # which one: a queue, a storage, a worker, a host; "" when there is one
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != Status.PROBLEM


def run_checks(*, probe_timeout: float = 10.0) -> list[Check]:
    """Every check, in the order an operator fixes things: tools, Redis, workers, storages, staging, hosts."""
    checks = [qemu_img_check()]
    database = database_check()
    checks.append(database)
    redis_checks, connection = redis_check()
    checks += redis_checks
    live_queues: dict[str, dict[str, str]] = {}
    if connection is not None:
        worker_checks, live_queues = workers_check(connection)
        checks += worker_checks
        checks.append(cron_check(connection))
    storages = list(ImageStorage.objects.order_by("name")) if database.ok else []
    if database.ok:
        checks += storage_checks(storages)
    checks += staging_checks(connection, live_queues, storages, timeout=probe_timeout)
    checks += libvirt_checks()
    return checks


# qemu-img


def qemu_img_check() -> Check:
    area = "qemu-img"
    try:
        return Check(area, _("web server"), Status.OK, probe.qemu_img_version())
    except FileNotFoundError:
        detail = _("qemu-img is not installed here: install it with apt-get install qemu-utils.")
    except (OSError, subprocess.SubprocessError) as error:
        detail = _("qemu-img does not run: %(reason)s") % {"reason": error}
    return Check(area, _("web server"), Status.PROBLEM, detail)


# The database


def database_check() -> Check:
    area = _("Database")
    alias = DEFAULT_DB_ALIAS
    vendor = connections[alias].vendor
    try:
        executor = MigrationExecutor(connections[alias])
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        return Check(
            area, vendor, Status.PROBLEM, _("Cannot use the database: %(reason)s") % {"reason": error}
        )
    if unapplied:
        return Check(
            area,
            vendor,
            Status.PROBLEM,
            ngettext(
                "%(count)d migration is not applied: run manage.py migrate.",
                "%(count)d migrations are not applied: run manage.py migrate.",
                len(unapplied),
            )
            % {"count": len(unapplied)},
        )
    return Check(area, vendor, Status.OK, _("Reachable; every migration applied."))


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


# Storages


def storage_checks(storages: list[ImageStorage]) -> list[Check]:
    area = _("Storage")
    if not storages:
        return [
            Check(
                area,
                "",
                Status.WARNING,
                _("No image storage: add one in Django admin or with manage.py addstorage."),
            )
        ]
    checks = []
    for storage in storages:
        if not storage.enabled:
            checks.append(Check(area, storage.name, Status.WARNING, _("Disabled: not checked.")))
            continue
        backend = get_backend(storage)
        try:
            backend.test_connection()
            free = backend.free_bytes()
        except StorageError as error:
            checks.append(
                Check(area, storage.name, Status.PROBLEM, _("Not writable: %(reason)s") % {"reason": error})
            )
            continue
        sizes = {"free": filesizeformat(free), "reserved": filesizeformat(storage.reserved_bytes)}
        if free <= storage.reserved_bytes:
            detail = (
                _(
                    "Writable, but only %(free)s free, within the reserved %(reserved)s: every import is "
                    "refused. Free space or lower the reserved capacity."
                )
                % sizes
            )
            checks.append(Check(area, storage.name, Status.PROBLEM, detail))
        else:
            detail = _("Writable; %(free)s free (%(reserved)s reserved).") % sizes
            checks.append(Check(area, storage.name, Status.OK, detail))
    return checks


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
                % {"path": staging, "reason": error.strerror or error},
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


# libvirt hosts (the compute app)


def libvirt_checks() -> list[Check]:
    try:
        model = apps.get_model("compute", "ComputeHost")
    except LookupError:
        return []  # no compute hosts in this version of the console
    return [libvirt_host_check(str(host), _host_uri(host)) for host in model.objects.all()]


def _host_uri(host) -> str:
    for field in ("uri", "libvirt_uri", "connection_uri"):
        value = getattr(host, field, "")
        if value:
            return value
    return ""


def libvirt_host_check(name: str, uri: str, *, timeout: float = 10.0) -> Check:
    area = _("Libvirt hosts")
    try:
        import libvirt
    except ImportError:
        return Check(area, name, Status.PROBLEM, _("libvirt-python is not installed here."))
    # Errors are reported in the check, not printed on stderr by libvirt's default handler.
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    result: dict = {}

    def connect():
        try:
            connection = libvirt.openReadOnly(uri)
            try:
                result["version"] = connection.getLibVersion()
                result["hostname"] = connection.getHostname()
            finally:
                connection.close()
        except libvirt.libvirtError as error:
            result["error"] = error.get_error_message() or str(error)

    thread = threading.Thread(target=connect, daemon=True, name=f"libvirt-check-{name}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Check(
            area,
            name,
            Status.PROBLEM,
            _("%(uri)s did not answer within %(seconds)d s.") % {"uri": uri, "seconds": timeout},
        )
    if "error" in result:
        return Check(
            area,
            name,
            Status.PROBLEM,
            _("Cannot reach %(uri)s: %(reason)s") % {"uri": uri, "reason": result["error"]},
        )
    version = result["version"]
    return Check(
        area,
        name,
        Status.OK,
        _("%(uri)s answers: %(host)s, libvirt %(version)s.")
        % {
            "uri": uri,
            "host": result["hostname"],
            "version": f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}",
        },
    )
