"""Chunk names: BLAKE3 for new stores, SHA256 kept by older ones until `convertchunks` converts them,
without losing deduplication between the old chunks and the new ones."""

import hashlib
import io
import json
import os
import time

import pytest
from django.core.management import call_command

from storage.backends import StorageError, chunknames
from storage.models import ImageStorage
from storage.services import storage_convert_chunk_names

from .conftest import MiB, chunk_name, files_under, random_bytes, read_all

DAY = 86400


def names_on_disk(backend) -> set[str]:
    return {os.path.basename(path) for path in files_under(backend.chunks_dir)}


def manifest_names(backend, key) -> list[str]:
    return [name for name in backend.load_manifest(key)["chunks"] if name]


def test_names_say_their_scheme_and_are_checked_against_the_bytes():
    data = b"x" * 1000
    b3, sha = chunknames.name_of(data, "blake3"), chunknames.name_of(data, "sha256")
    assert sha == hashlib.sha256(data).hexdigest() and b3.endswith(".b3") and len(b3) == 67
    assert chunknames.scheme_of(b3) == "blake3" and chunknames.scheme_of(sha) == "sha256"
    assert chunknames.matches(b3, data) and chunknames.matches(sha, data)
    assert not chunknames.matches(b3, data + b"y") and not chunknames.matches(sha, data + b"y")


def test_a_new_store_names_chunks_by_blake3_and_an_older_one_keeps_sha256(make_chunk_store):
    data = random_bytes(2 * 4 * MiB, 1)
    new_storage, new = make_chunk_store()
    old_storage, old = make_chunk_store(chunk_names=ImageStorage.ChunkNames.SHA256)
    assert new_storage.chunk_names == "blake3" and old_storage.chunk_names == "sha256"

    new.ingest(io.BytesIO(data), key="img")
    old.ingest(io.BytesIO(data), key="img")

    halves = [data[: 4 * MiB], data[4 * MiB :]]
    assert manifest_names(new, "img") == [chunk_name(half) for half in halves]
    assert manifest_names(old, "img") == [hashlib.sha256(half).hexdigest() for half in halves]
    assert read_all(new, "img") == data == read_all(old, "img")
    # Each store deduplicates within its scheme.
    assert old.ingest(io.BytesIO(data), key="again").bytes_stored == 0


def test_conversion_keeps_deduplication_between_old_and_new_chunks(make_chunk_store):
    storage, backend = make_chunk_store(chunk_names=ImageStorage.ChunkNames.SHA256)
    shared, own_a, own_b = random_bytes(8 * MiB, 2), random_bytes(4 * MiB, 3), random_bytes(MiB + 5, 4)
    backend.ingest(io.BytesIO(shared + own_a), key="a")
    backend.ingest(io.BytesIO(shared + bytes(4 * MiB) + own_b), key="b")
    used_before = backend.usage().used
    old_names = names_on_disk(backend)
    assert len(old_names) == 4 and not any(name.endswith(".b3") for name in old_names)

    seen = []
    result = storage_convert_chunk_names(storage=storage, progress=seen.append)

    storage.refresh_from_db()
    assert storage.chunk_names == "blake3"
    assert (result.replicas, result.chunks, result.changed) == (2, 4, [])
    assert result.bytes_read == 12 * MiB + MiB + 5  # each distinct chunk read once
    assert sorted(seen) == ["a", "b"]
    for key, data in (("a", shared + own_a), ("b", shared + bytes(4 * MiB) + own_b)):
        assert all(name.endswith(".b3") for name in manifest_names(backend, key))
        assert read_all(backend, key) == data
    # The new names are second names of the same files: no byte was copied.
    assert backend.usage().used - used_before < MiB

    # A new import of bytes the store had before conversion stores nothing new.
    assert backend.ingest(io.BytesIO(own_a + shared), key="c").bytes_stored == 0
    assert manifest_names(backend, "c") == [
        chunk_name(part) for part in (own_a, shared[: 4 * MiB], shared[4 * MiB :])
    ]

    # The old names go with the next cleanup; the bytes stay (they are the new names' too).
    old = time.time() - 2 * DAY
    for path in files_under(backend.root):
        os.utime(path, (old, old))
    cleaned = backend.cleanup(referenced_keys={"a", "b", "c"}, grace_seconds=DAY)
    assert cleaned.blobs_removed == 4 and cleaned.bytes_freed == 0
    assert names_on_disk(backend) == {
        chunk_name(part) for part in (shared[: 4 * MiB], shared[4 * MiB :], own_a, own_b)
    }
    assert read_all(backend, "b") == shared + bytes(4 * MiB) + own_b
    # Dropping an image now frees its own chunk's bytes.
    cleaned = backend.cleanup(referenced_keys={"a", "c"}, grace_seconds=0)
    assert cleaned.bytes_freed >= len(own_b)


def test_a_damaged_chunk_stops_the_conversion_and_leaves_its_manifest_as_it_was(make_standalone):
    storage, backend = make_standalone(chunk_names=ImageStorage.ChunkNames.SHA256)
    data = random_bytes(8 * MiB, 5)
    backend.ingest(io.BytesIO(data), key="img")
    before = backend.load_manifest("img")
    damaged = backend.chunk_path(before["chunks"][1])
    with open(damaged, "r+b") as file:
        file.seek(100)
        file.write(b"\xff" * 16)

    with pytest.raises(StorageError, match="does not match its name; the storage is damaged"):
        storage_convert_chunk_names(storage=storage)

    assert backend.load_manifest("img") == before


def test_a_manifest_written_anew_meanwhile_is_not_overwritten(make_chunk_store):
    _storage, backend = make_chunk_store()
    backend.ingest(io.BytesIO(random_bytes(MiB, 6)), key="img")
    expected = backend.load_manifest("img")
    backend.ingest(io.BytesIO(random_bytes(MiB, 7)), key="img")  # a writer published a newer one
    newer = backend.load_manifest("img")

    assert backend.replace_manifest("img", expected, dict(expected, chunks=[])) is False
    assert backend.load_manifest("img") == newer
    assert backend.replace_manifest("img", newer, dict(newer, note="x")) is True
    assert backend.load_manifest("img")["note"] == "x"


def test_convertchunks_converts_the_stores_still_on_sha256(make_standalone, make_s3, capsys):
    old_storage, old = make_standalone("old", chunk_names=ImageStorage.ChunkNames.SHA256)
    new_storage, new = make_standalone("new")
    make_s3()
    data = random_bytes(4 * MiB, 8)
    old.ingest(io.BytesIO(data), key="img")
    new.ingest(io.BytesIO(data), key="img")
    new_manifest = (new.manifests_dir / "img.json").read_text()

    call_command("convertchunks")

    out = capsys.readouterr().out
    assert "old: 1 replicas and 1 chunks (4.0 MB read) now named by BLAKE3" in out
    assert "new:" not in out
    assert manifest_names(old, "img") == [chunk_name(data)]
    assert (new.manifests_dir / "img.json").read_text() == new_manifest
    old_storage.refresh_from_db()
    assert old_storage.chunk_names == "blake3"
    with pytest.raises(Exception, match="no standalone storage named nothing"):
        call_command("convertchunks", "nothing")


def test_direct_sync_checks_blake3_names_on_the_target(make_storage_server, make_server_storage):
    source_server, target_server = make_storage_server(), make_storage_server()
    network = source_server.link(target_server)
    _source, source_backend = make_server_storage("b3-source", server=source_server)
    _target, target_backend = make_server_storage("b3-target", server=target_server, sync_network=network)
    data = random_bytes(8 * MiB, 9)
    source_backend.ingest(io.BytesIO(data), key="img")
    assert source_backend.copy_to("img", target_backend).bytes_stored == 8 * MiB
    assert read_all(target_backend, "img") == data

    damaged = random_bytes(4 * MiB, 10)
    source_backend.ingest(io.BytesIO(damaged), key="bad")
    path = source_backend.chunk_path(
        json.loads((source_backend.manifests_dir / "bad.json").read_text())["chunks"][0]
    )
    with open(path, "r+b") as file:
        file.write(b"\0" * 8)
    with pytest.raises(StorageError, match="does not match its name"):
        source_backend.copy_to("bad", target_backend)
    assert not target_backend.exists("bad")


def test_the_storage_page_shows_the_chunk_names_and_how_to_convert(admin_client, make_standalone, make_s3):
    old, _backend = make_standalone("older", chunk_names=ImageStorage.ChunkNames.SHA256)
    new, _backend = make_standalone("newer")
    s3, _backend = make_s3()

    def shown(storage):
        page = admin_client.get(f"/admin/storage/imagestorage/{storage.pk}/change/").content.decode()
        return page.split("Chunk names", 1)[1][:300]

    assert "SHA256 (convert to BLAKE3 with manage.py convertchunks older)" in shown(old)
    assert "BLAKE3" in shown(new) and "convertchunks" not in shown(new)
    assert "BLAKE3" not in shown(s3) and "SHA256" not in shown(s3)
