"""One Redis client per queue configuration in each process.

django_rq.get_connection builds a new client, with a connection pool of its own, on every call: a
request that takes an upload lock, reports progress and releases the lock opened a TCP connection to
Redis for each. The client kept here reuses its pool's connections (redis-py's pools are thread-safe and
start afresh in a forked child, such as an RQ work horse).

    connection("imports").set(...)
"""

import os
import threading

import django_rq
from django.conf import settings

_clients: dict = {}
_mutex = threading.Lock()


def _after_fork_in_child() -> None:
    # The clients' pools reconnect in a child by themselves; the mutex may have been held by a thread
    # the child does not have.
    global _mutex
    _mutex = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def connection(queue: str = "default"):
    """The Redis client of `queue`'s configuration (settings.RQ_QUEUES), kept for this process."""
    key = (queue, repr(sorted(settings.RQ_QUEUES[queue].items())))
    client = _clients.get(key)
    if client is None:
        with _mutex:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = django_rq.get_connection(queue)
    return client
