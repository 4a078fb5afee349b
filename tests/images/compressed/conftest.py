"""Compressed images made in the test: a qemu-img image, then the gzip, xz, zstd and bzip2 tools."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.images.fetch.conftest import fetch_settings, http_server  # noqa: F401
from tests.images.fetch.test_url_import import api  # noqa: F401
from tests.images.imports.conftest import Disks, MiB, disks, standalone, start_import  # noqa: F401

TOOLS = {"gzip": ("gzip", ".gz"), "xz": ("xz", ".xz"), "zstd": ("zstd", ".zst"), "bzip2": ("bzip2", ".bz2")}


def compress(path: Path, codec: str) -> Path:
    """`codec -c path > path.suffix` with the command-line tool, as a distribution would publish it."""
    tool, suffix = TOOLS[codec]
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (apt-get install zstd xz-utils bzip2)")
    target = path.with_name(path.name + suffix)
    with open(target, "wb") as out:
        subprocess.run([tool, "-c", str(path)], stdout=out, check=True)
    return target


@pytest.fixture
def qcow2_image(tmp_path):
    made = Disks(tmp_path / "disks")
    return made.convert(made.raw(size=6 * MiB), "qcow2")
