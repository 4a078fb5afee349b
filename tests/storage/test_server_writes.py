"""How new chunks reach a storage server: through OpenSSH's client and a receiver run by the server's
python3 (storage/backends/sshpipe.py), or over SFTP when that is not available. Both write the same store.
"""

import os
import subprocess

import pytest

from storage.backends import StorageFull

from .conftest import MiB, cached_bytes, files_under, random_bytes, read_all


def _source(tmp_path, data):
    path = tmp_path / "source.raw"
    path.write_bytes(data)
    return path


def _receivers(storage_server) -> list[str]:
    found = subprocess.run(["pgrep", "-af", "python3 -u -c"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "import json, mmap, os, struct, sys" in line]


def test_chunks_are_written_through_openssh_and_read_back(make_server_storage, storage_server, tmp_path):
    storage, backend = make_server_storage(concurrency=4)
    # A hole in the middle of a chunk and a whole chunk of zeros: both stay holes on the server.
    data = (
        random_bytes(4 * MiB, 1)
        + bytes(4 * MiB)
        + random_bytes(2 * MiB, 2)
        + bytes(MiB)
        + random_bytes(MiB, 8)
    )
    result = backend.ingest(_source(tmp_path, data), key="piped")
    # Whole chunks are written by the receiver around the server's page cache (O_DIRECT).
    assert [cached_bytes(path) for path in files_under(backend.root / "chunks")] == [0, 0]

    pipes = backend.connection.pipes()
    assert pipes is not None and pipes.alive
    assert _receivers(storage_server), "no receiver ran on the server"
    assert result.size == len(data)
    assert read_all(backend, "piped") == data
    chunks = files_under(backend.root / "chunks")
    assert len(chunks) == 2  # the all-zero chunk is not stored
    allocated = sum(os.stat(path).st_blocks * 512 for path in chunks)
    assert allocated < 7.5 * MiB  # the zeros inside the last chunk are a hole
    assert not files_under(backend.root / "tmp")

    # The same bytes again: every chunk deduplicated, nothing new written.
    again = backend.ingest(_source(tmp_path, data), key="again")
    assert again.bytes_stored == 0


def test_without_openssh_chunks_go_over_sftp(make_server_storage, settings, tmp_path):
    settings.STORAGE_SSH_CLIENT = False
    storage, backend = make_server_storage(concurrency=4)
    data = random_bytes(9 * MiB, 3)
    backend.ingest(_source(tmp_path, data), key="sftp")

    assert backend.connection.pipes() is None
    assert read_all(backend, "sftp") == data
    assert len(files_under(backend.root / "chunks")) == 3


def test_a_connection_that_closes_is_opened_again_for_the_next_import(make_server_storage, tmp_path):
    storage, backend = make_server_storage(concurrency=2)
    backend.ingest(_source(tmp_path, random_bytes(5 * MiB, 4)), key="first")
    pipes = backend.connection.pipes()
    pipes.master.kill()
    pipes.master.wait()

    with pytest.raises(Exception, match="went away"):
        backend.ingest(_source(tmp_path, random_bytes(5 * MiB, 5)), key="cut")
    data = random_bytes(5 * MiB, 6)
    backend.ingest(_source(tmp_path, data), key="second")
    assert read_all(backend, "second") == data


def test_a_full_disk_on_the_server_is_a_clear_error_and_nothing_stays(
    make_server_storage, storage_server, tmp_path
):
    name = "small-disk"
    mount = tmp_path / name
    mount.mkdir()
    pid = str(storage_server.process.pid)
    # A 12 MiB file system inside the server's own mount namespace only.
    subprocess.run(
        ["nsenter", "-t", pid, "-m", "mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
        check=True,
    )
    try:
        storage, backend = make_server_storage(name, concurrency=2)
        with pytest.raises(StorageFull) as refused:
            backend.ingest(_source(tmp_path, random_bytes(40 * MiB, 7)), key="too-big")
        assert storage.name in str(refused.value)
        assert backend.connection.pipes() is not None
        left = subprocess.run(
            ["nsenter", "-t", pid, "-m", "find", str(mount / "chunks"), str(mount / "tmp"), "-type", "f"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert left == []
    finally:
        subprocess.run(["nsenter", "-t", pid, "-m", "umount", "-l", str(mount)], check=False)
