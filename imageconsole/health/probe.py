"""The job a worker runs for the health checks: what the web server cannot see from where it stands.

It takes names, never paths, for staging: the worker looks in its own STAGING_ROOT, so a worker
configured with another directory, or on a host that does not share it, fails to find the marker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

from django.conf import settings

from imageconsole.core.words import os_reason

MARKER_DIRECTORY = ".doctor"


def write_marker(staging_root: Path, token: str) -> Path:
    """The web server's side: a file in STAGING_ROOT holding `token`."""
    directory = Path(staging_root) / MARKER_DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / f"{token}.marker"
    marker.write_text(token)
    return marker


def _read_marker(name: str, token: str) -> str:
    """Empty when this process reads `token` from the marker in its STAGING_ROOT, otherwise why not."""
    path = Path(settings.STAGING_ROOT) / MARKER_DIRECTORY / Path(name).name
    try:
        content = path.read_text()
    except FileNotFoundError:
        return f"{path} does not exist here"
    except OSError as error:
        return f"{path}: {os_reason(error)}"
    return "" if content == token else f"{path} holds something else"


def qemu_img_version() -> str:
    """qemu-img's version line; raises OSError or SubprocessError when it does not run."""
    result = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True, timeout=10, check=True)
    return (result.stdout.splitlines() or [""])[0].strip()


def _qemu_img() -> tuple[str, bool]:
    """A worker's qemu-img, and its qemu-nbd: conversions to qcow2 read the source through qemu-nbd."""
    try:
        version = qemu_img_version()
    except FileNotFoundError:
        return "qemu-img is not installed (apt-get install qemu-utils)", False
    except (OSError, subprocess.SubprocessError) as error:
        return str(error), False
    try:
        subprocess.run(["qemu-nbd", "--version"], capture_output=True, timeout=10, check=True)
    except FileNotFoundError:
        return "qemu-nbd is not installed (apt-get install qemu-utils)", False
    except (OSError, subprocess.SubprocessError) as error:
        return f"qemu-nbd: {error}", False
    return version, True


def _write_probe(mount_path: str) -> str:
    """Empty when this process can create, write and remove a file in the storage's tmp directory."""
    directory = Path(mount_path) / "tmp"
    path = directory / f"{uuid.uuid4().hex}.doctor"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"imageconsole")
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
    except OSError as error:
        return f"{directory}: {os_reason(error)}"
    return ""


def worker_probe(*, marker: str, token: str, storages: list[tuple[str, str]]) -> dict:
    """RQ entry point: report what this worker sees. Reads and writes nothing of the console's data."""
    return {
        "host": socket.gethostname(),
        "staging": _read_marker(marker, token),
        "qemu_img": _qemu_img(),
        "storages": [(name, _write_probe(path)) for name, path in storages],
    }
