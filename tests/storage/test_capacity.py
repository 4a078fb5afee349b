"""A full disk, or a write that would cross the reserved capacity: a clear error, nothing kept.

The disk is a small tmpfs mounted in a private mount namespace (unshare(1), as root), so the test is
deterministic whatever else is using the machine's disk.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage.backends import StorageFull

from .conftest import MiB, files_under

ROOT = Path(__file__).resolve().parents[2]


def run_on_tmpfs(tmp_path, scenario, *, size, reserved=0, inodes=None):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to mount a private tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" && exec "$3" -m tests.storage.full_disk_child "$2" "$4" "$5"'
    completed = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            options,
            str(mount),
            sys.executable,
            scenario,
            str(reserved),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if completed.returncode and "unshare failed" in completed.stderr:
        pytest.skip(f"cannot create a mount namespace here: {completed.stderr.strip()}")
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1].replace("\\u00a0", " "))


def assert_nothing_kept(outcome):
    assert outcome["manifests"] == 0
    assert outcome["chunks"] == 0
    assert outcome["tmp"] == 0
    assert outcome["small_reads_back"]


def test_disk_full_while_writing(tmp_path):
    outcome = run_on_tmpfs(tmp_path, "stream", size="24m")
    # Caught by the free-space check before a chunk, or by ENOSPC during one: both say the same.
    assert "“small” is full" in outcome["error"] or "“small” ran out of space" in outcome["error"]
    assert_nothing_kept(outcome)


def test_no_inodes_left_is_a_full_disk_too(tmp_path):
    # The layout takes about 262 inodes; a few chunks later, creating a file fails with ENOSPC.
    outcome = run_on_tmpfs(tmp_path, "stream", size="256m", inodes=268)
    assert "ran out of space" in outcome["error"]
    assert_nothing_kept(outcome)


def test_reserve_crossed_while_writing_a_stream_of_unknown_size(tmp_path):
    outcome = run_on_tmpfs(tmp_path, "stream", size="64m", reserved=32 * MiB)
    assert "in reserve" in outcome["error"]
    assert_nothing_kept(outcome)


def test_reserve_that_would_be_crossed_refuses_before_any_byte(tmp_path):
    outcome = run_on_tmpfs(tmp_path, "expected-size", size="64m", reserved=32 * MiB)
    assert "32.0 MB in reserve" in outcome["error"] and "the image needs 48.0 MB" in outcome["error"]
    assert_nothing_kept(outcome)


def test_reserve_check_on_the_real_disk(make_chunk_store):
    storage, backend = make_chunk_store()
    backend.ensure_layout()
    storage.reserved_bytes = backend.free_bytes()
    with pytest.raises(StorageFull, match="in reserve"):
        backend.open_writer("img", expected_size=10 * MiB)
    assert files_under(backend.chunks_dir) == [] and files_under(backend.tmp_dir) == []


def test_sizes_that_round_alike_are_told_apart(make_standalone):
    from storage.backends.base import reserve_message

    storage, _backend = make_standalone(reserved_bytes=0)
    message = reserve_message(storage, free=4_190_000, nbytes=4_194_304).replace("\xa0", " ")
    # Both are "4.0 MB": "4.0 MB free and the image needs 4.0 MB" would say nothing.
    assert "4,190,000 bytes free" in message and "needs 4,194,304 bytes" in message
    storage.reserved_bytes = 1024**3
    message = reserve_message(storage, free=1024**3 + 5 * MiB, nbytes=48 * MiB).replace("\xa0", " ")
    assert "keeps 1.0 GB in reserve: 5.0 MB can be used and the image needs 48.0 MB" in message
