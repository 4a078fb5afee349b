"""Progress of an import written to its row at most once a second, and the heartbeat that tells the
reconciler a job is still alive."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque

from django.utils import timezone

from imageconsole.core.queues import connection

from .. import conf
from ..models import Image

HEARTBEAT_PREFIX = "imageconsole:import-heartbeat:"
PROGRESS_INTERVAL = 1.0


RATE_WINDOW_SECONDS = 5.0


class StageProgress:
    """`report(done, total)` or `report_percent(p)`: the row's stage and progress, at most once a second.

    `report` also writes the transfer rate (uploads and URL fetches alike): the bytes moved over the last
    few seconds of this stage.
    """

    def __init__(
        self, image_id, stage: str, *, interval: float = PROGRESS_INTERVAL, row: Image | None = None
    ):
        """`row`: the image as read now. When it shows `stage` already (a resumed upload's next request),
        it is left as it is until a report is due (a second after the row's last one: an upload sent in
        many short requests writes its progress once a second too), and the rate is measured from the
        row's bytes and time."""
        self.image_id = image_id
        self.stage = stage
        self.interval = interval
        self._last = 0.0
        self._samples: deque[tuple[float, int]] = deque()
        continued = row is not None and row.stage == stage
        self._rate_unknown = continued  # the row's rate is an earlier request's until the first report
        if continued:
            age = max(0.0, (timezone.now() - row.updated_at).total_seconds())
            self._last = time.monotonic() - age
            if age <= RATE_WINDOW_SECONDS:  # the rate over the last few seconds, across requests
                self._samples.append((self._last, row.bytes_done))
        else:
            self.set_stage(stage)

    def set_stage(self, stage: str) -> None:
        self.stage = stage
        self._last = 0.0
        self._samples.clear()
        Image.objects.filter(pk=self.image_id, status=Image.Status.UPLOADING).update(
            stage=stage, progress=0, bytes_per_second=None, updated_at=timezone.now()
        )

    def _rate(self, done: int) -> int | None:
        now = time.monotonic()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_SECONDS:
            self._samples.popleft()
        started, first_done = self._samples[0]
        return int((done - first_done) / (now - started)) if now > started and done >= first_done else None

    def _due(self, final: bool) -> bool:
        now = time.monotonic()
        if final or now - self._last >= self.interval:
            self._last = now
            return True
        return False

    def report(self, done: int, total: int | None, *, final: bool = False) -> None:
        if not self._due(final):
            return
        rate = self._rate(done)
        percent = min(100, done * 100 // total) if total else 0
        changes = {"stage": self.stage, "progress": percent, "bytes_done": done, "updated_at": timezone.now()}
        if total:
            changes["bytes_total"] = total
        if rate is not None or self._rate_unknown:
            changes["bytes_per_second"] = rate
            self._rate_unknown = False
        Image.objects.filter(pk=self.image_id, status=Image.Status.UPLOADING).update(**changes)

    def report_percent(self, percent: float, *, final: bool = False) -> None:
        if not self._due(final):
            return
        Image.objects.filter(pk=self.image_id, status=Image.Status.UPLOADING).update(
            stage=self.stage, progress=max(0, min(100, int(percent))), updated_at=timezone.now()
        )


def _connection():
    return connection("imports")


def heartbeat_key(name) -> str:
    """An import beats under its image id; other jobs under names of their own ("replica-12")."""
    return f"{HEARTBEAT_PREFIX}{name}"


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """While a job works on an import (or on a replica copy), a thread refreshes a short-lived Redis key
    naming this host and process. A killed process stops refreshing it; on the same host the reconciler
    sees at once that the process is gone."""

    def __init__(self, name, *, period: float = 2.0):
        self.name = name
        self.period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        try:
            _connection().set(heartbeat_key(self.name), this_process(), ex=conf.heartbeat_seconds())
        except Exception:  # noqa: BLE001 - a missed beat only risks a late reconcile, never the import
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            _connection().delete(heartbeat_key(self.name))
        except Exception:  # noqa: BLE001
            pass


def heartbeat_of(name) -> tuple[str, int] | None:
    """(host, pid) of the process working on the import (or job) `name`, or None when no heartbeat is
    fresh."""
    value = _connection().get(heartbeat_key(name))
    if not value:
        return None
    host, _sep, pid = value.decode().rpartition(":")
    try:
        return host, int(pid)
    except ValueError:
        return None


def process_alive(host: str, pid: int) -> bool:
    """False only when the process is known to be gone (it ran on this host and no longer exists)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # A killed process nobody has reaped yet is a zombie: gone all the same.
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
