"""The standalone backend: round trips, holes, deduplication, chunk layout, cancel and abort."""

import hashlib
import io
import json
import os
import subprocess

import pytest

from storage.backends import Cancelled, ReplicaNotFound, StorageError
from storage.backends.standalone import CHUNK_SIZE, aligned_buffer, check_mount_path

from .conftest import MiB, cached_bytes, chunk_name, files_under, random_bytes, read_all


def chunk_files(backend):
    return [path for path in files_under(backend.chunks_dir)]


def test_ingest_reads_back_with_hashes_from_the_same_pass(make_chunk_store, tmp_path):
    _storage, backend = make_chunk_store()
    data = random_bytes(9 * MiB + 12345, seed=1)
    source = tmp_path / "image.raw"
    source.write_bytes(data)

    result = backend.ingest(source, key="img-1")

    assert result.size == len(data)
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.bytes_stored == len(data)
    assert backend.size("img-1") == len(data)
    assert read_all(backend, "img-1") == data
    assert (
        read_all(backend, "img-1", CHUNK_SIZE - 10, 2 * CHUNK_SIZE + 10)
        == data[CHUNK_SIZE - 10 : 2 * CHUNK_SIZE + 10]
    )
    copy = tmp_path / "copy.raw"
    backend.copy_to_path("img-1", copy)
    assert copy.read_bytes() == data
    # Chunks are named by the BLAKE3 of their bytes: 3 full chunks and a tail.
    names = sorted(os.path.basename(path) for path in chunk_files(backend))
    expected = sorted(
        chunk_name(data[offset : offset + CHUNK_SIZE]) for offset in range(0, len(data), CHUNK_SIZE)
    )
    assert names == expected
    manifest = json.loads((backend.manifests_dir / "img-1.json").read_text())
    assert manifest["chunks"] == [
        chunk_name(data[offset : offset + CHUNK_SIZE]) for offset in range(0, len(data), CHUNK_SIZE)
    ]


def test_writer_accepts_small_and_odd_writes(make_chunk_store):
    _storage, backend = make_chunk_store(concurrency=1)
    data = random_bytes(2 * CHUNK_SIZE + 7, seed=2)
    writer = backend.open_writer("img-2", expected_size=len(data))
    view = memoryview(bytearray(data))
    for offset in range(0, len(data), 1_000_003):
        writer.write(view[offset : offset + 1_000_003])
    assert writer.bytes_written == len(data)
    result = writer.commit()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(backend, "img-2") == data


def test_empty_file(make_chunk_store, tmp_path):
    _storage, backend = make_chunk_store()
    result = backend.ingest(io.BytesIO(b""), key="empty")
    assert result.size == 0
    assert result.sha256 == hashlib.sha256(b"").hexdigest()
    assert read_all(backend, "empty") == b""
    backend.copy_to_path("empty", tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == b""


def test_zero_chunks_are_holes_and_copies_stay_sparse(make_chunk_store, tmp_path):
    _storage, backend = make_chunk_store()
    data = random_bytes(MiB, seed=3) + bytes(3 * CHUNK_SIZE) + random_bytes(MiB, seed=4)

    result = backend.ingest(io.BytesIO(data), key="sparse")

    # Two chunks hold the data: the first (1 MiB of data, 3 MiB of zeros kept as holes in it) and the
    # last; the all-zero chunks in between are never written.
    manifest = json.loads((backend.manifests_dir / "sparse.json").read_text())
    assert manifest["chunks"].count(None) == 2
    assert len(chunk_files(backend)) == 2
    assert result.bytes_stored < 3 * CHUNK_SIZE
    assert backend.usage().used < 3 * MiB
    copy = tmp_path / "copy.raw"
    backend.copy_to_path("sparse", copy)
    assert copy.read_bytes() == data
    assert copy.stat().st_blocks * 512 < 3 * MiB
    assert read_all(backend, "sparse", MiB - 5, MiB + 5) == data[MiB - 5 : MiB + 5]


def test_identical_chunks_are_stored_once(make_chunk_store):
    """Two 64 MiB images that share 60 MiB take about 68 MiB."""
    _storage, backend = make_chunk_store()
    base = random_bytes(60 * MiB, seed=10)
    first = base + random_bytes(4 * MiB, seed=11)
    second = base + random_bytes(4 * MiB, seed=12)

    one = backend.ingest(io.BytesIO(first), key="first")
    two = backend.ingest(io.BytesIO(second), key="second")

    assert one.bytes_stored == 64 * MiB
    assert two.bytes_stored == 4 * MiB
    usage = backend.usage()
    assert 68 * MiB <= usage.used < 68 * MiB + MiB
    assert usage.logical == 128 * MiB
    assert usage.dedup_ratio == pytest.approx(128 / 68, rel=0.02)
    assert read_all(backend, "second") == second
    backend.delete("first")
    assert read_all(backend, "second") == second


def test_sync_to_a_standalone_storage_copies_only_missing_chunks(make_chunk_store):
    _storage, source = make_chunk_store("source")
    _target_storage, target = make_chunk_store("target")
    base = random_bytes(60 * MiB, seed=20)
    first = base + random_bytes(4 * MiB, seed=21)
    second = base + random_bytes(4 * MiB, seed=22)
    source.ingest(io.BytesIO(first), key="first")
    source.ingest(io.BytesIO(second), key="second")
    target.ingest(io.BytesIO(first), key="first")
    used_before = target.usage().used
    seen = []

    result = source.copy_to("second", target, progress=seen.append)

    assert result.bytes_stored == 4 * MiB
    assert result.sha256 == hashlib.sha256(second).hexdigest()
    assert 4 * MiB <= target.usage().used - used_before < 5 * MiB
    assert read_all(target, "second") == second
    assert seen[-1] == len(second)


def test_missing_replica_and_bad_keys(make_chunk_store, tmp_path):
    _storage, backend = make_chunk_store()
    with pytest.raises(ReplicaNotFound):
        backend.size("nope")
    with pytest.raises(ReplicaNotFound):
        backend.read_range("nope")
    assert not backend.exists("nope")
    backend.delete("nope")  # deleting twice is harmless
    for key in ("../escape", "/abs", "a//b", ".hidden", ""):
        with pytest.raises(ValueError):
            backend.open_writer(key)


def test_cancel_keeps_nothing(make_chunk_store):
    _storage, backend = make_chunk_store()
    data = random_bytes(12 * MiB, seed=30)
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        backend.ingest(io.BytesIO(data), key="cancelled", should_cancel=should_cancel)

    assert not backend.exists("cancelled")
    assert chunk_files(backend) == []
    assert files_under(backend.tmp_dir) == []


def test_abort_keeps_a_chunk_another_writer_claimed(make_chunk_store):
    _storage, backend = make_chunk_store(concurrency=1)
    shared = random_bytes(CHUNK_SIZE, seed=40)
    own = random_bytes(CHUNK_SIZE, seed=41)
    first = backend.open_writer("first")
    first.write(shared + own)
    first.wait()  # its chunks are on disk, as they are when a long import is half done
    second = backend.open_writer("second")
    second.write(shared)
    second.commit()

    first.abort()

    assert read_all(backend, "second") == shared
    names = {os.path.basename(path) for path in chunk_files(backend)}
    assert names == {chunk_name(shared)}
    assert not backend.exists("first")


@pytest.mark.parametrize(
    "path", ["/", "/dev", "/proc/self", "/sys/kernel", "/usr/bin", "/bin/x", "relative/dir", ""]
)
def test_system_and_relative_mount_paths_are_refused(path):
    with pytest.raises(StorageError):
        check_mount_path(path)


def test_mount_path_through_a_symlink_into_proc_is_refused(tmp_path):
    (tmp_path / "link").symlink_to("/proc")
    with pytest.raises(StorageError, match="/proc"):
        check_mount_path(str(tmp_path / "link" / "sub"))


def test_connection_test_creates_the_directory_and_reports_why_it_fails(make_chunk_store, tmp_path):
    storage, backend = make_chunk_store()
    backend.test_connection()
    assert os.path.isdir(storage.mount_path)
    assert files_under(backend.tmp_dir) == []

    (tmp_path / "a-file").write_text("not a directory")
    storage.mount_path = str(tmp_path / "a-file" / "images")
    from storage.backends import get_backend

    with pytest.raises(StorageError, match="Not a directory"):
        get_backend(storage).test_connection()


def _chunk_of(backend, data: bytes):
    return backend.chunk_path(chunk_name(data))


def test_whole_chunks_go_to_disk_around_the_page_cache(make_standalone):
    """Whole chunks are written with O_DIRECT (the CPU an import saves goes to its hashing); a short last
    chunk through the cache. Both read back, holes stay holes, whether a write came as bytes or not."""
    _storage, backend = make_standalone()
    data = (
        random_bytes(2 * CHUNK_SIZE, seed=30)
        + bytes(CHUNK_SIZE // 2)
        + random_bytes(CHUNK_SIZE // 2, seed=31)
    )
    data += random_bytes(12345, seed=32)
    writer = backend.open_writer("direct", expected_size=len(data))
    writer.write(data[:CHUNK_SIZE])  # a whole chunk as bytes
    view = memoryview(bytearray(data))
    for offset in range(CHUNK_SIZE, len(data), 1_000_003):
        writer.write(view[offset : offset + 1_000_003])
    writer.commit()

    assert backend.direct
    whole = [data[i : i + CHUNK_SIZE] for i in range(0, 3 * CHUNK_SIZE, CHUNK_SIZE)]
    for chunk in whole:
        assert cached_bytes(_chunk_of(backend, chunk)) == 0
    assert cached_bytes(_chunk_of(backend, data[3 * CHUNK_SIZE :])) > 0
    half_zero = _chunk_of(backend, whole[2])
    assert half_zero.stat().st_blocks * 512 <= CHUNK_SIZE // 2 + 64 * 1024
    assert read_all(backend, "direct") == data


def test_a_file_system_without_direct_io_is_written_through_the_cache(make_standalone, tmp_path):
    """ramfs (like some FUSE and network file systems) refuses O_DIRECT: the backend notices once and
    writes through the page cache from then on."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a ramfs")
    _storage, backend = make_standalone()
    directory = tmp_path / "ramfs"
    directory.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(directory)], check=True)
    try:
        data = random_bytes(CHUNK_SIZE, seed=33)
        buffer = aligned_buffer(CHUNK_SIZE)
        buffer[:] = data
        fd = backend._write_chunk_file(
            directory / "chunk", memoryview(buffer), [(0, CHUNK_SIZE)], aligned=True
        )
        os.close(fd)
        assert (directory / "chunk").read_bytes() == data
        assert backend.direct is False
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_the_systems_reason_is_worded_in_the_readers_language(make_standalone, tmp_path):
    """An error the operating system gave (here ENOTDIR) is kept with its words, like the console's own: a
    Chinese reader reads it in Chinese."""
    from django.utils import translation

    from imageconsole.core.words import render_words, words_of
    from storage.backends import get_backend

    storage, _backend = make_standalone()
    (tmp_path / "a-file").write_text("not a directory")
    storage.mount_path = str(tmp_path / "a-file" / "images")
    with pytest.raises(StorageError) as raised:
        get_backend(storage).test_connection()
    kept = words_of(raised.value.args[0])  # as an import's error is stored
    with translation.override("zh-hans"):
        assert "不是目录" in render_words(kept) and "Not a directory" not in render_words(kept)
    with translation.override("en"):
        assert "Not a directory" in render_words(kept)


def test_a_range_within_one_chunk_is_read_without_starting_threads(make_standalone):
    """The import's finish reads a qcow2's tables as small ranges; a pool of reading threads started for
    one chunk's read cost more than the read. Several chunks are still read by the pool, in order."""
    import threading

    _storage, backend = make_standalone(concurrency=4)
    data = random_bytes(3 * CHUNK_SIZE, seed=40)
    writer = backend.open_writer("img-ranges", expected_size=len(data))
    writer.write(data)
    writer.commit()
    threads = []
    read_chunk = backend._read_chunk

    def spying(*args, **kwargs):
        threads.append(threading.current_thread())
        return read_chunk(*args, **kwargs)

    backend._read_chunk = spying

    assert (
        read_all(backend, "img-ranges", CHUNK_SIZE + 100, CHUNK_SIZE + 200)
        == data[CHUNK_SIZE + 100 : CHUNK_SIZE + 200]
    )
    assert threads == [threading.current_thread()]
    threads.clear()
    assert read_all(backend, "img-ranges", 10, 3 * CHUNK_SIZE - 10) == data[10:-10]
    assert len(threads) == 3 and threading.current_thread() not in threads
