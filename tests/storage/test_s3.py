"""The distributed (S3) backend against a real S3 endpoint over HTTP (moto in server mode)."""

import hashlib
import io
import urllib.request

import pytest

from storage.backends import ReplicaNotFound, StorageError, StorageFull
from storage.backends.s3 import DATA_PREFIX, MIN_PART, part_size_for

from .conftest import MiB, random_bytes, read_all


def test_ingest_reads_back_with_hashes(make_s3, tmp_path):
    _storage, backend = make_s3()
    data = random_bytes(3 * MiB + 17, seed=1)
    source = tmp_path / "image.raw"
    source.write_bytes(data)

    result = backend.ingest(source, key="img-1")

    assert (result.size, result.md5, result.sha256) == (
        len(data),
        hashlib.md5(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    assert backend.size("img-1") == len(data)
    assert read_all(backend, "img-1") == data
    assert read_all(backend, "img-1", 1000, 2 * MiB + 5) == data[1000 : 2 * MiB + 5]
    backend.copy_to_path("img-1", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == data


def test_large_files_go_up_in_parts(make_s3):
    _storage, backend = make_s3(concurrency=3)
    data = random_bytes(3 * MIN_PART + MiB, seed=2)

    backend.ingest(io.BytesIO(data), key="big")

    head = backend.client.head_object(Bucket=backend.bucket, Key=DATA_PREFIX + "big")
    # A multipart object's ETag is "<md5 of the part md5s>-<number of parts>".
    assert head["ETag"].strip('"').endswith("-4")
    assert read_all(backend, "big") == data


def test_part_size_keeps_under_the_part_limit():
    assert part_size_for(10 * MiB) == MIN_PART
    assert part_size_for(500 * 1024**3) // MiB * 9000 * MiB >= 500 * 1024**3


def test_presigned_url_serves_the_object_without_the_console(make_s3):
    _storage, backend = make_s3()
    data = random_bytes(100_000, seed=3)
    backend.ingest(io.BytesIO(data), key="img")

    url = backend.presigned_url("img", expires_in=600, filename="disk image.qcow2")

    with urllib.request.urlopen(url) as response:  # the moto endpoint on 127.0.0.1
        assert response.read() == data
        assert "disk%20image.qcow2" in response.headers["Content-Disposition"]


def test_missing_bucket_is_created_and_bad_credentials_are_reported(make_s3):
    storage, backend = make_s3(connect=False)
    with pytest.raises(Exception):  # noqa: B017 - the bucket does not exist yet
        backend.client.head_bucket(Bucket=storage.bucket)
    backend.test_connection()
    backend.client.head_bucket(Bucket=storage.bucket)

    storage.endpoint_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    from storage.backends import get_backend

    with pytest.raises(StorageError, match="Cannot use bucket"):
        get_backend(storage).test_connection()


def test_abort_leaves_no_object_and_no_upload(make_s3):
    _storage, backend = make_s3(concurrency=2)
    writer = backend.open_writer("aborted", expected_size=3 * MIN_PART)
    writer.write(random_bytes(2 * MIN_PART + 5, seed=4))
    writer.abort()

    assert not backend.exists("aborted")
    assert backend.client.list_objects_v2(Bucket=backend.bucket).get("KeyCount", 0) == 0
    assert backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", []) == []


def test_capacity_and_reserve(make_s3):
    storage, backend = make_s3(capacity_bytes=20 * MiB, reserved_bytes=4 * MiB)
    backend.ingest(io.BytesIO(random_bytes(10 * MiB, seed=5)), key="one")
    usage = backend.usage()
    assert usage.total == 20 * MiB and usage.logical == 10 * MiB and usage.free < 10 * MiB

    with pytest.raises(StorageFull, match="in reserve"):
        backend.open_writer("two", expected_size=7 * MiB)
    assert not backend.exists("two")


def test_missing_replica(make_s3):
    _storage, backend = make_s3()
    with pytest.raises(ReplicaNotFound):
        backend.size("nope")
    assert not backend.exists("nope")
