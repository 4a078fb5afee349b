"""A chunk writer's bytes placed in its own buffer (write_area/wrote, what a socket's recv_into fills), its
buffers and hashing threads reused by the next writer of the process, and those threads after a fork."""

import base64
import hashlib
import os
import threading

import pytest

from storage.backends import lanes
from storage.backends.standalone import CHUNK_SIZE, HASH_PIECE

from .conftest import MiB, random_bytes, read_all


def _place(writer, data: bytes, step: int) -> None:
    """Put `data` into the writer's own area `step` bytes at a time, as recv_into would."""
    offset = 0
    while offset < len(data):
        area = writer.write_area()
        n = min(step, len(area), len(data) - offset)
        area[:n] = data[offset : offset + n]
        writer.wrote(n)
        offset += n


def test_bytes_placed_in_the_writers_area_store_and_hash_like_written_ones(make_chunk_store):
    _storage, backend = make_chunk_store()
    data = random_bytes(3 * CHUNK_SIZE + HASH_PIECE // 3, seed=11)
    writer = backend.open_writer("placed", expected_size=len(data))
    writer.write(data[:1000])  # the first bytes come through write() (a receiver decides compression)
    _place(writer, data[1000 : 2 * CHUNK_SIZE], step=HASH_PIECE // 2 + 17)
    writer.write(data[2 * CHUNK_SIZE : 2 * CHUNK_SIZE + 5])  # mixed with copies
    _place(writer, data[2 * CHUNK_SIZE + 5 :], step=3 * MiB)
    result = writer.commit()
    assert (result.size, result.md5, result.sha256) == (
        len(data),
        hashlib.md5(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    assert read_all(backend, "placed") == data


def test_a_checkpoint_mid_piece_and_a_resume_elsewhere_keep_the_hashes(make_standalone):
    """A checkpoint between hash pieces hashes the rest of the buffer itself; a writer resumed from its
    state (another web process) continues without hashing those bytes twice."""
    _storage, backend = make_standalone()  # (a storage server resumes by reading back)
    data = random_bytes(2 * CHUNK_SIZE + 3 * MiB, seed=12)
    cut = CHUNK_SIZE + HASH_PIECE + 12345  # not on a piece boundary
    writer = backend.open_writer("first", expected_size=len(data))
    _place(writer, data[:cut], step=700_001)
    published = writer.checkpoint("first")
    assert published.md5 == hashlib.md5(data[:cut]).hexdigest()
    state = writer.resume_state()
    writer.release()

    resumed = backend.resume_writer("first", "second", state, expected_size=len(data))
    assert resumed is not None
    _place(resumed, data[cut:], step=HASH_PIECE)
    result = resumed.commit()
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(backend, "second") == data


def test_a_state_kept_before_the_tail_was_hashed_still_resumes(make_standalone):
    """Receive states written by the version before (hash midstates where the complete chunks end, no
    "hashed") are continued correctly: the tail read back is hashed with the rest."""
    from storage.backends import hashstate

    _storage, backend = make_standalone()  # (a storage server resumes by reading back)
    data = random_bytes(CHUNK_SIZE + MiB, seed=13)
    writer = backend.open_writer("old", expected_size=len(data) + MiB)
    writer.write(data)
    writer.checkpoint("old")
    writer.release()

    md5, sha256 = hashlib.md5(data[:CHUNK_SIZE]), hashlib.sha256(data[:CHUNK_SIZE])
    states = hashstate.export_all({"md5": md5, "sha256": sha256})
    old_state = {
        "complete": CHUNK_SIZE,
        "hashes": {k: base64.b64encode(v).decode() for k, v in states.items()},
    }
    more = random_bytes(MiB, seed=14)
    resumed = backend.resume_writer("old", "old-r1", old_state, expected_size=len(data) + MiB)
    resumed.write(more)
    result = resumed.commit()
    assert result.md5 == hashlib.md5(data + more).hexdigest()
    assert result.sha256 == hashlib.sha256(data + more).hexdigest()


def test_reused_buffers_carry_nothing_of_the_last_writer(make_chunk_store):
    """Buffers go back to the process when a writer closes and are not zeroed: the next writer's short
    chunks, holes and tail hold only its own bytes."""
    _storage, backend = make_chunk_store()
    noise = random_bytes(2 * CHUNK_SIZE, seed=15)
    first = backend.open_writer("noise", expected_size=len(noise))
    _place(first, noise, step=MiB)
    first.commit()

    data = bytes(CHUNK_SIZE) + b"\x01" * 100 + bytes(MiB) + b"\x02" * 7  # a hole, then a short tail
    second = backend.open_writer("quiet", expected_size=len(data))
    _place(second, data, step=CHUNK_SIZE)
    result = second.commit()
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert read_all(backend, "quiet") == data
    assert result.bytes_stored == len(data) - CHUNK_SIZE  # the all-zero chunk stayed a hole


def test_writers_one_after_another_hash_and_store_on_the_same_threads(make_standalone):
    """A writer's hashing and storing threads outlive it, idle, for the next writer of the process (a tus
    upload sent in PATCHes to several web processes opens a writer per PATCH)."""
    _storage, backend = make_standalone()
    data = random_bytes(2 * CHUNK_SIZE, seed=16)

    def writer_threads():
        return {thread for thread in threading.enumerate() if thread.name.startswith("chunk-")}

    warm = backend.open_writer("warm", expected_size=len(data))
    warm.write(data)
    warm.commit()
    lent = writer_threads()
    assert lent
    for index in range(5):
        writer = backend.open_writer(f"w{index}", expected_size=len(data))
        writer.write(data)
        writer.commit()
        assert lent <= writer_threads()  # none of them ended


def test_the_md5_thread_keeps_its_priority_and_the_helpers_give_way_to_it(make_chunk_store):
    """MD5 of the whole file cannot be split, so its thread sets the pace of an import: the SHA256 and
    chunk-storing threads run niced (lanes.HELPER_NICE) and take a CPU from it only when one is free."""
    _storage, backend = make_chunk_store()
    data = random_bytes(2 * CHUNK_SIZE + 5, seed=19)
    writer = backend.open_writer("paced", expected_size=len(data))
    writer.write(data)
    result = writer.commit()
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest()

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    niceness: dict[str, set[int]] = {}
    for thread in threading.enumerate():
        if thread.name.startswith("chunk-"):
            lane = thread.name.rsplit("_", 1)[0]
            niceness.setdefault(lane, set()).add(os.getpriority(os.PRIO_PROCESS, thread.native_id))
    helper = min(base + lanes.HELPER_NICE, 19)
    assert niceness == {"chunk-md5": {base}, "chunk-sha256": {helper}, "chunk-write": {helper}}


def test_a_forked_child_writes_with_threads_of_its_own(make_standalone):
    """An RQ work horse is a fork of a process that may hold idle lent threads: they do not exist in the
    child, which must start its own instead of waiting on them forever."""
    _storage, backend = make_standalone()
    data = random_bytes(CHUNK_SIZE + 99, seed=17)
    writer = backend.open_writer("parent", expected_size=len(data))
    writer.write(data)
    writer.commit()
    assert lanes._idle  # the parent keeps idle executors now

    pid = os.fork()
    if pid == 0:  # the child: write, then report through the exit status
        code = 1
        try:
            import signal

            signal.alarm(60)  # a child stuck on a dead thread ends instead of hanging the test run
            child = backend.open_writer("child", expected_size=len(data))
            child.write(data)
            result = child.commit()
            code = 0 if result.md5 == hashlib.md5(data).hexdigest() else 2
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert read_all(backend, "child") == data


def test_a_chunk_removed_after_a_checkpoint_is_found_missing_at_the_next(make_chunk_store):
    """Each publish checks under the lock that the chunks it names are there (a data cleanup may have
    taken one a long write stored before its grace period ended); a checkpoint's next publish checks only
    the chunks stored since, which no published manifest protects."""
    from storage.backends import StorageError

    from .conftest import chunk_name

    _storage, backend = make_chunk_store()
    data = random_bytes(4 * CHUNK_SIZE, seed=18)
    writer = backend.open_writer("long", expected_size=len(data))
    writer.write(data[: 2 * CHUNK_SIZE])
    writer.checkpoint("long-1")
    writer.write(data[2 * CHUNK_SIZE :])
    writer.wait()
    taken = chunk_name(data[3 * CHUNK_SIZE :], backend)
    os.unlink(str(backend.chunk_path(taken)))  # (a storage server's files are this machine's here)
    try:
        with pytest.raises(StorageError, match="removed by a data cleanup"):
            writer.checkpoint("long-2")
    finally:
        writer.abort()
