"""Uploads (PUT and tus) of compressed images: staged as sent, then decompressed by their job into the
pipeline, so the stored image reads back byte-equal to the uncompressed file."""

import hashlib
import os

import pytest

from images.models import Image, ImageReplica
from images.services.receiving import live_forget
from tenants import services
from tests.images.imports.conftest import MiB, stored_bytes

from .conftest import compress


@pytest.fixture
def auth(db):
    def make(user):
        _token, key = services.api_token_create(user=user)
        return {"HTTP_AUTHORIZATION": f"Token {key}"}

    return make


def put(client, headers, image, data, django_capture_on_commit_callbacks, run_jobs):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.put(
            f"/api/v1/images/{image.pk}/file", data=data, content_type="application/octet-stream", **headers
        )
    assert response.status_code == 202, response.content
    for _round in range(3):  # decompress, then finish, then cleanup
        with django_capture_on_commit_callbacks(execute=True):
            assert run_jobs() == 0
    image.refresh_from_db()
    return image


@pytest.mark.parametrize("codec", ["gzip", "xz", "zstd", "bzip2"])
def test_put_of_a_compressed_qcow2_is_stored_decompressed(
    codec,
    client,
    owner,
    auth,
    standalone,
    qcow2_image,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    plain = qcow2_image.read_bytes()
    packed = compress(qcow2_image, codec).read_bytes()
    image = start_import(standalone, "qcow2", expected_sha256=hashlib.sha256(plain).hexdigest())

    image = put(client, auth(owner), image, packed, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == plain
    assert image.size == len(plain) and image.virtual_size == 6 * MiB
    assert image.sha256 == hashlib.sha256(plain).hexdigest()
    assert image.compression == codec and image.compressed_size == len(packed)


def test_put_of_a_compressed_vmdk_is_converted(
    client, owner, auth, standalone, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    packed = compress(disks.convert(disks.raw(size=6 * MiB), "vmdk"), "xz").read_bytes()
    image = start_import(standalone, "vmdk")

    image = put(client, auth(owner), image, packed, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.virtual_size == 6 * MiB and image.compression == "xz"


def test_put_of_a_gzip_of_random_bytes_claimed_as_qcow2_is_refused(
    client, owner, auth, standalone, tmp_path, start_import, run_jobs, django_capture_on_commit_callbacks
):
    noise = tmp_path / "noise.qcow2"
    noise.write_bytes(os.urandom(2 * MiB))
    image = start_import(standalone, "qcow2")

    image = put(
        client,
        auth(owner),
        image,
        compress(noise, "gzip").read_bytes(),
        django_capture_on_commit_callbacks,
        run_jobs,
    )

    assert image.status == Image.Status.FAILED
    assert "qcow2" in image.error
    assert not ImageReplica.objects.filter(image=image).exists()


def test_expected_sha256_is_that_of_the_decompressed_image(
    client, owner, auth, standalone, qcow2_image, start_import, run_jobs, django_capture_on_commit_callbacks
):
    packed = compress(qcow2_image, "zstd").read_bytes()
    image = start_import(standalone, "qcow2", expected_sha256=hashlib.sha256(packed).hexdigest())

    image = put(client, auth(owner), image, packed, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.FAILED
    assert hashlib.sha256(qcow2_image.read_bytes()).hexdigest() in image.error


@pytest.mark.django_db(transaction=True)
def test_tus_upload_of_a_compressed_image_resumed_in_another_process(
    live_server, owner, standalone, qcow2_image, start_import, run_jobs
):
    from tusclient import client as tus_client

    _token, key = services.api_token_create(user=owner)
    packed_path = compress(qcow2_image, "xz")
    packed = packed_path.read_bytes()
    image = start_import(standalone, "qcow2")
    client = tus_client.TusClient(
        f"{live_server.url}/api/v1/uploads/", headers={"Authorization": f"Token {key}"}
    )
    half = len(packed) // 2
    first = client.uploader(file_path=str(packed_path), chunk_size=half, metadata={"image_id": str(image.pk)})
    first.upload_chunk()
    assert first.offset == half
    assert image.upload.__class__.objects.get(image=image).compression == "xz"
    live_forget()  # as if the next request reached another web process: it must rebuild its state

    resumed = client.uploader(file_path=str(packed_path), url=first.url, chunk_size=4 * MiB)
    assert resumed.get_offset() == half
    resumed.upload()
    assert resumed.offset == len(packed)

    for _round in range(3):
        assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == qcow2_image.read_bytes()
    assert image.compression == "xz" and image.compressed_size == len(packed)
