"""Data cleanup on a standalone storage frees exactly what nothing references, and never a chunk an
ingest in flight relies on."""

import io
import os
import threading
import time

from storage.backends.standalone import CHUNK_SIZE

from .conftest import chunk_name, files_under, random_bytes, read_all

DAY = 86400


def age_everything(backend, seconds=2 * DAY):
    old = time.time() - seconds
    for path in files_under(backend.root):
        os.utime(path, (old, old))


def chunk_names(backend):
    return {os.path.basename(path) for path in files_under(backend.chunks_dir)}


def sha(data):
    return chunk_name(data)


def test_cleanup_frees_exactly_the_unreferenced_chunks_and_spares_an_ingest_in_flight(make_chunk_store):
    _storage, backend = make_chunk_store(concurrency=2)
    shared, only_a1, only_a2, only_b = (random_bytes(CHUNK_SIZE, seed) for seed in (1, 2, 3, 4))
    backend.ingest(io.BytesIO(only_a1 + shared + only_a2), key="a")
    backend.ingest(io.BytesIO(shared + only_b), key="b")
    age_everything(backend)
    # An import in flight re-uses a chunk only the deleted image "a" had, and writes a new one.
    new = random_bytes(CHUNK_SIZE, 5)
    writer = backend.open_writer("c")
    writer.write(only_a1 + new)
    writer.wait()
    expected_freed = sum(
        os.stat(path).st_blocks * 512
        for path in [backend.chunk_path(sha(only_a2)), backend.manifest_path("a")]
    )

    result = backend.cleanup(referenced_keys={"b"}, grace_seconds=3600)

    assert chunk_names(backend) == {sha(shared), sha(only_b), sha(only_a1), sha(new)}
    assert result.bytes_freed == expected_freed
    assert result.replicas_removed == 1
    assert result.blobs_removed == 1
    assert not backend.exists("a")
    writer.commit()
    assert read_all(backend, "c") == only_a1 + new
    assert read_all(backend, "b") == shared + only_b


def test_recent_unreferenced_data_is_kept_until_the_grace_period_ends(make_chunk_store):
    _storage, backend = make_chunk_store()
    data = random_bytes(CHUNK_SIZE, 6)
    backend.ingest(io.BytesIO(data), key="fresh")  # its replica row does not exist yet

    assert backend.cleanup(referenced_keys=set(), grace_seconds=3600).bytes_freed == 0
    assert read_all(backend, "fresh") == data

    age_everything(backend)
    result = backend.cleanup(referenced_keys=set(), grace_seconds=3600)
    assert result.blobs_removed == 1 and result.replicas_removed == 1
    assert chunk_names(backend) == set()
    assert result.bytes_freed >= CHUNK_SIZE


def test_abandoned_temporary_files_go_after_the_grace_period(make_chunk_store):
    _storage, backend = make_chunk_store()
    backend.ensure_layout()
    leftover = backend.tmp_dir / "0123.chunk"
    leftover.write_bytes(b"x" * 5000)
    assert backend.cleanup(referenced_keys=set(), grace_seconds=3600).blobs_removed == 0
    age_everything(backend)
    assert backend.cleanup(referenced_keys=set(), grace_seconds=3600).blobs_removed == 1
    assert not leftover.exists()


def test_an_ingest_reusing_a_chunk_while_cleanup_removes_it_still_succeeds(make_standalone, monkeypatch):
    """The worst moment: cleanup has decided an old chunk is unreferenced and is about to unlink it
    when an ingest re-uses it. The lock makes the ingest wait, find the chunk gone and write it again."""
    from pathlib import Path

    _storage, backend = make_standalone(concurrency=1)
    old = random_bytes(CHUNK_SIZE, 7)
    backend.ingest(io.BytesIO(old), key="old")
    backend.settle("old")  # a settled replica: deleting it leaves its chunks to data cleanup
    backend.delete("old")
    age_everything(backend)
    writer = backend.open_writer("new")
    racers = []
    real_unlink = Path.unlink

    def unlink_after_a_racing_claim(path, *args, **kwargs):
        if path.name == sha(old) and not racers:
            racer = threading.Thread(target=lambda: (writer.write(old), writer.wait()))
            racers.append(racer)
            racer.start()
            racer.join(timeout=2)  # without the lock the re-use would slip in here, before the unlink
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink_after_a_racing_claim)
    result = backend.cleanup(referenced_keys=set(), grace_seconds=3600)
    racers[0].join()
    monkeypatch.undo()

    assert result.blobs_removed == 1
    writer.commit()
    assert read_all(backend, "new") == old
