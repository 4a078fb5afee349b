"""64 MiB VHDX files (dynamic and fixed, as qemu-img writes them) import in one PUT and in one tus PATCH.

The receiver reads a request body in 4 MiB blocks; the VHDX inspector used to miss the metadata region in
blocks that large and refused the file as having "no VHDX header".
"""

import subprocess

import pytest

from images.models import Image

from .conftest import MiB, stored_bytes


@pytest.fixture
def vhdx(disks):
    raw = disks.raw(size=64 * MiB, seed=4)

    def make(subformat):
        return raw, disks.convert(raw, "vhdx", f"{subformat}.vhdx", "-o", f"subformat={subformat}")

    return make


def _same_disk(raw, image, tmp_path):
    stored = tmp_path / "stored.qcow2"
    stored.write_bytes(stored_bytes(image))
    done = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(stored)], capture_output=True
    )
    return done.returncode == 0


@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
def test_vhdx_in_one_put(
    subformat,
    client,
    owner,
    standalone,
    vhdx,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
    tmp_path,
):
    from tenants import services

    raw, path = vhdx(subformat)
    image = start_import(standalone, "vhdx")
    key = services.api_token_create(user=owner)[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.put(
            f"/api/v1/images/{image.pk}/file",
            data=path.read_bytes(),
            content_type="application/octet-stream",
            HTTP_AUTHORIZATION=f"Token {key}",
        )
    assert response.status_code == 202, response.content
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.virtual_size == 64 * MiB
    assert _same_disk(raw, image, tmp_path)


@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
def test_vhdx_in_one_tus_patch(subformat, standalone, vhdx, start_import, run_jobs, tus_uploader, tmp_path):
    raw, path = vhdx(subformat)
    image = start_import(standalone, "vhdx")
    uploader = tus_uploader(path, image, chunk_size=path.stat().st_size)
    uploader.upload()
    assert uploader.offset == path.stat().st_size
    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.virtual_size == 64 * MiB
    assert _same_disk(raw, image, tmp_path)
