"""A private redis-server on a Unix socket, for `make run` and for the test suite."""

import subprocess
import time
from pathlib import Path


def start_private_redis(directory: Path, *, persist: bool, **popen_kwargs) -> tuple[subprocess.Popen, str]:
    """Start redis-server with its socket and data in `directory`; return the process and its URL.

    `persist` keeps the data across restarts (`make run`); the suite's Redis keeps nothing.
    """
    directory.mkdir(parents=True, exist_ok=True)
    socket = directory / "redis.sock"
    socket.unlink(missing_ok=True)
    persistence = ["--save", "60 1"] if persist else ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
            *persistence,
        ],
        **popen_kwargs,
    )
    deadline = time.monotonic() + 10
    while not socket.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(
                f"redis-server did not start; see {directory / 'redis.log'} (apt-get install redis-server)"
            )
        time.sleep(0.02)
    return process, f"unix://{socket}?db=0"
