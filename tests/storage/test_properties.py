"""Any byte string stored reads back identically, for any range and as a complete copy; zero regions of
the copy are holes. On both backends."""

import hashlib
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.backends.standalone import SPARSE_BLOCK

from .conftest import read_all

segments = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=70_000).map(lambda data: ("data", data)),
        st.integers(min_value=1, max_value=300_000).map(lambda size: ("zeros", size)),
    ),
    max_size=6,
)

property_settings = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def build(parts):
    data = b"".join(part if kind == "data" else bytes(part) for kind, part in parts)
    zero_regions = []
    offset = 0
    for kind, part in parts:
        length = len(part) if kind == "data" else part
        if kind == "zeros":
            zero_regions.append((offset, offset + length))
        offset += length
    return data, zero_regions


def assert_holes(path, zero_regions):
    """Every SPARSE_BLOCK-aligned block inside a zero region of the copy is a hole."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for start, end in zero_regions:
            block = -(-start // SPARSE_BLOCK) * SPARSE_BLOCK
            while block + SPARSE_BLOCK <= end:
                try:
                    next_data = os.lseek(fd, block, os.SEEK_DATA)
                except OSError:  # ENXIO: no data after this offset
                    next_data = os.fstat(fd).st_size
                assert next_data >= block + SPARSE_BLOCK, (
                    f"bytes {block}-{block + SPARSE_BLOCK} are not a hole"
                )
                block += SPARSE_BLOCK
    finally:
        os.close(fd)


@pytest.fixture(params=[4096, 65536, 1024 * 1024], ids=["4KiB-chunks", "64KiB-chunks", "1MiB-chunks"])
def standalone(request, make_standalone):
    _storage, backend = make_standalone(concurrency=3)
    backend.chunk_size = request.param
    return backend


def check_round_trip(backend, parts, bounds, tmp_path):
    data, zero_regions = build(parts)
    key = f"prop-{uuid.uuid4().hex}"
    result = backend.ingest_stream(iter([data[i : i + 50_000] for i in range(0, len(data), 50_000)]), key=key)
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.md5 == hashlib.md5(data).hexdigest()
    start, end = sorted(min(bound, len(data)) for bound in bounds)
    assert read_all(backend, key, start, end) == data[start:end]
    assert read_all(backend, key, start) == data[start:]
    copy = tmp_path / f"{key}.copy"
    backend.copy_to_path(key, copy)
    assert copy.read_bytes() == data
    assert_holes(copy, zero_regions)
    copy.unlink()
    backend.delete(key)


@property_settings
@given(parts=segments, bounds=st.tuples(st.integers(0, 2_000_000), st.integers(0, 2_000_000)))
def test_standalone_round_trip(standalone, tmp_path, parts, bounds):
    check_round_trip(standalone, parts, bounds, tmp_path)


@pytest.fixture
def distributed(make_s3):
    _storage, backend = make_s3(concurrency=3)
    return backend


@property_settings
@given(parts=segments, bounds=st.tuples(st.integers(0, 2_000_000), st.integers(0, 2_000_000)))
def test_s3_round_trip(distributed, tmp_path, parts, bounds, monkeypatch):
    # Small ranged GETs, so that a range and a copy span several of them.
    monkeypatch.setattr("storage.backends.s3.RANGE_PART", 3 * SPARSE_BLOCK)
    check_round_trip(distributed, parts, bounds, tmp_path)
