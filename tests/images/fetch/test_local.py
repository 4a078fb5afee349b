import os

import pytest

from images.fetch import FetchCancelled, URLRefused, fetch, validate

from .conftest import MemorySink, sha256


@pytest.fixture
def file_root(tmp_path, settings, payload):
    root = tmp_path / "dvd"
    root.mkdir()
    (root / "image-1.4.qcow2").write_bytes(payload)
    settings.IMPORT_FILE_ROOTS = [str(root)]
    return root


def test_administrator_imports_a_file_under_a_root(file_root, payload):
    sink = MemorySink()

    result = fetch(f"file://{file_root}/image-1.4.qcow2", sink=sink, allow_file=True)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.announced_size == len(payload)


def test_file_url_from_a_tenant_is_refused(file_root):
    with pytest.raises(URLRefused) as refused:
        fetch(f"file://{file_root}/image-1.4.qcow2", sink=MemorySink(), allow_file=False)
    assert refused.value.rule == "file-admin"


def test_file_outside_the_roots_is_refused(file_root, tmp_path):
    outside = tmp_path / "secret.img"
    outside.write_bytes(b"x" * 10)

    for url in (f"file://{outside}", f"file://{file_root}/../secret.img", "file:///etc/passwd"):
        with pytest.raises(URLRefused) as refused:
            validate(url, allow_file=True)
        assert refused.value.rule == "file-roots"
        assert "IMPORT_FILE_ROOTS" in str(refused.value)


def test_a_link_out_of_the_root_is_refused(file_root, tmp_path):
    outside = tmp_path / "secret.img"
    outside.write_bytes(b"x" * 10)
    os.symlink(outside, file_root / "innocent.qcow2")

    with pytest.raises(URLRefused) as refused:
        fetch(f"file://{file_root}/innocent.qcow2", sink=MemorySink(), allow_file=True)
    assert refused.value.rule == "file-roots"


def test_no_roots_means_no_file_imports(settings, tmp_path):
    settings.IMPORT_FILE_ROOTS = []
    with pytest.raises(URLRefused) as refused:
        validate(f"file://{tmp_path}/x.qcow2", allow_file=True)
    assert refused.value.rule == "file-roots"


def test_cancel_stops_a_local_copy(file_root):
    sink = MemorySink()

    with pytest.raises(FetchCancelled):
        fetch(f"file://{file_root}/image-1.4.qcow2", sink=sink, allow_file=True, should_cancel=lambda: True)
    assert len(sink.buffer) < (file_root / "image-1.4.qcow2").stat().st_size
