"""Worker threads a chunk writer borrows for its life instead of starting its own.

A writer hashes MD5 and SHA256 on a thread each (in stream order) and stores chunks on a few more.
Starting those threads for every writer cost a tus upload sent in PATCHes to several web processes five
thread starts per PATCH, each waiting for a busy CPU to schedule the new thread. Executors are lent
here and given back idle (nothing pending or running), so each is still one writer's at a time and a
single-thread executor keeps its writer's order.

    pool = borrow("chunk-md5", 1)
    ...
    give_back(pool, "chunk-md5", 1)   # when none of its futures is pending or running
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

KEPT = 8  # idle executors kept per (name, workers): more than the uploads one process takes at once

_idle: dict[tuple[str, int], list[ThreadPoolExecutor]] = {}
_mutex = threading.Lock()


def borrow(name: str, workers: int) -> ThreadPoolExecutor:
    """An idle executor of `workers` threads (named `name`), kept or new."""
    with _mutex:
        idle = _idle.get((name, workers))
        if idle:
            return idle.pop()
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


def give_back(executor: ThreadPoolExecutor, name: str, workers: int) -> None:
    """Keep an executor none of whose work is pending or running, for the next writer."""
    with _mutex:
        idle = _idle.setdefault((name, workers), [])
        if len(idle) < KEPT:
            idle.append(executor)
            return
    executor.shutdown(wait=False)


def _after_fork_in_child() -> None:
    # A forked child (an RQ work horse) has none of the parent's threads: its executors would never run.
    global _mutex
    _mutex = threading.Lock()
    _idle.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
