import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from rq import Worker

from storage.models import ImageStorage

REPO = Path(__file__).resolve().parent.parent.parent
QUEUES = ("imports", "convert", "default", "maintenance")


@pytest.fixture
def storage(db, tmp_path):
    return ImageStorage.objects.create(
        name="local", kind=ImageStorage.Kind.STANDALONE, mount_path=str(tmp_path / "images"), reserved_bytes=0
    )


@pytest.fixture
def start_worker(rq_redis, tmp_path):
    """Start a real `manage.py rqworker` (optionally inside a wrapper command, e.g. a private mount
    namespace) on the suite's Redis; returns its Popen once it waits for jobs there."""
    started = []

    def start(*, queues=QUEUES, staging_root=None, wrapper=None):
        env = {
            **os.environ,
            "REDIS_URL": settings.REDIS_URL,
            "STAGING_ROOT": str(staging_root or settings.STAGING_ROOT),
            # Its own scratch database and VAR_DIR: the probe job reads no rows, and no real data is near.
            "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
            "VAR_DIR": str(tmp_path / "worker-var"),
        }
        command = [sys.executable, str(REPO / "manage.py"), "rqworker", *queues]
        process = subprocess.Popen(
            [*wrapper, *command] if wrapper else command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(process)
        deadline = time.monotonic() + 60
        # Idle: registered, its signal handlers installed (after registering), waiting for jobs.
        while not any(
            int(w.pid or 0) == process.pid and w.get_state() == "idle"
            for w in Worker.all(connection=rq_redis)
        ):
            assert process.poll() is None, "the worker exited at start"
            assert time.monotonic() < deadline, "the worker did not register in Redis"
            time.sleep(0.1)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
