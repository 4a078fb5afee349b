"""The storage backends' export operations, by key: put (moved on one filesystem, copied sparse across
two), size, ranged reads, usage, delete; S3 objects under imageconsole/exports/."""

import os
import tempfile
from pathlib import Path

import pytest

from storage.backends import ReplicaNotFound, get_backend

from .conftest import MiB, raw_disk


@pytest.fixture(params=["standalone", "distributed"])
def backend(request):
    backend = get_backend(request.getfixturevalue(request.param))
    backend.test_connection()
    return backend


def test_put_read_ranges_usage_and_delete(backend, tmp_path):
    source = raw_disk(tmp_path / "export.img", size=6 * MiB)
    data = source.read_bytes()
    used_before = backend.usage().used
    assert backend.export_put("0f/abc.img", source) == len(data)
    assert not source.exists()  # the source is consumed
    assert backend.export_size("0f/abc.img") == len(data)
    assert b"".join(backend.export_read_range("0f/abc.img")) == data
    assert b"".join(backend.export_read_range("0f/abc.img", 1000, 5 * MiB + 7)) == data[1000 : 5 * MiB + 7]
    assert backend.usage().used - used_before >= len(data) * 3 // 4  # a quarter of the file is holes
    # Exports are not replicas: data cleanup leaves them alone.
    backend.cleanup(referenced_keys=set(), grace_seconds=0)
    assert backend.export_size("0f/abc.img") == len(data)
    backend.export_delete("0f/abc.img")
    backend.export_delete("0f/abc.img")  # nothing to delete: no error
    with pytest.raises(ReplicaNotFound):
        backend.export_size("0f/abc.img")


def test_standalone_copies_across_filesystems_and_keeps_holes(standalone, tmp_path):
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    backend = get_backend(standalone)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:  # tmpfs: another filesystem
        source = raw_disk(Path(other) / "export.img", size=8 * MiB)
        data = source.read_bytes()
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        backend.export_put("cross.img", source)
        assert not source.exists()
    path = backend.export_path("cross.img")
    assert path.read_bytes() == data and path.parent == Path(standalone.mount_path) / "exports"
    assert path.stat().st_blocks * 512 <= len(data) * 3 // 4 + MiB  # the zero blocks stayed holes
    assert not list((Path(standalone.mount_path) / "tmp").iterdir())
