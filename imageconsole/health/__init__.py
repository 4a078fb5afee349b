"""The console's own health: what the web process and the workers need, and whether it works here.

`manage.py doctor` prints it; the dashboard shows it to platform administrators. Both call
`run_checks()`, which returns a list of `Check`s:

- qemu-img: its version, here and on each worker;
- the database: reachable, migrations applied;
- Redis: reachable, and the same one the workers use (they register in RQ's worker registry there);
- workers: alive per queue (a registered worker whose process is gone counts as stopped), and the
  periodic-jobs scheduler (`rqcron`);
- storages: each writable (here and on the workers) with free space above its reserved capacity;
- staging: a worker on every queue reads a marker file the web process wrote into STAGING_ROOT;
- libvirt hosts: reachable (only once the compute app has a ComputeHost model).
"""

from __future__ import annotations

from storage.models import ImageStorage

from .base import Check, Status
from .hosts import libvirt_checks
from .queues import cron_check, redis_check, workers_check
from .staging import staging_checks
from .system import database_check, qemu_img_check, storage_checks

__all__ = ["Check", "Status", "run_checks"]


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
