"""Worker threads a chunk writer borrows for its life instead of starting its own.

A writer hashes MD5 and SHA256 on a thread each (in stream order) and stores chunks on a few more.
Starting those threads for every writer cost a tus upload sent in PATCHes to several web processes five
thread starts per PATCH, each waiting for a busy CPU to schedule the new thread. Executors are lent
here and given back idle (nothing pending or running), so each is still one writer's at a time and a
single-thread executor keeps its writer's order.

    pool = borrow("chunk-md5", 1)
    ...
    give_back(pool, "chunk-md5", 1)   # when none of its futures is pending or running

A helper lane is borrowed with `nice=HELPER_NICE`: its threads run at a lower priority than the rest of
the process. The whole-file MD5 cannot be split, so its one thread sets the pace of an import; the
SHA256 and chunk lanes finish sooner and wait for it. When there are more runnable threads than CPUs
(the web process's receiving thread, a client or source server on the same machine, a second import),
every moment the MD5 thread waits for a CPU behind work that has time to spare makes the import longer.
On a 2-CPU machine the MD5 thread of a 1 GiB PUT waited 0.6 s of 2.5 s for a CPU (its schedstat);
with the helpers niced it waited 0.3 s and the upload took 2.2-2.3 s. Console requests and database
work keep their priority over the helpers too. A CPU with nothing else to do still runs a niced thread
at full speed. A lane's threads start niced from the thread that first submits to it (a writer's
owner: a request's or a job's thread).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

KEPT = 8  # idle executors kept per (name, workers): more than the uploads one process takes at once
HELPER_NICE = 5  # added to a helper lane's niceness: a third of the CPU share of a thread at the base

_idle: dict[tuple[str, int, int], list[ThreadPoolExecutor]] = {}
_mutex = threading.Lock()


def borrow(name: str, workers: int, nice: int = 0) -> ThreadPoolExecutor:
    """An idle executor of `workers` threads (named `name`), kept or new; its threads `nice` steps below
    the priority of the thread that starts them."""
    with _mutex:
        idle = _idle.get((name, workers, nice))
        if idle:
            return idle.pop()
    if nice:
        return ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=name, initializer=lower_priority, initargs=(nice,)
        )
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


def give_back(executor: ThreadPoolExecutor, name: str, workers: int, nice: int = 0) -> None:
    """Keep an executor none of whose work is pending or running, for the next writer."""
    with _mutex:
        idle = _idle.setdefault((name, workers, nice), [])
        if len(idle) < KEPT:
            idle.append(executor)
            return
    executor.shutdown(wait=False)


def lower_priority(nice: int = HELPER_NICE) -> None:
    """The calling thread `nice` steps lower (Linux keeps the niceness per thread: setpriority(2));
    never raised again, so for threads that end with their work or keep doing helper work."""
    try:
        os.nice(nice)
    except OSError:  # a sandbox that refuses it: the lane runs at the base priority
        pass


def _after_fork_in_child() -> None:
    # A forked child (an RQ work horse) has none of the parent's threads: its executors would never run.
    global _mutex
    _mutex = threading.Lock()
    _idle.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
