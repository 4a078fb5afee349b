"""URL imports of compressed images: the worker decompresses as it fetches, in the same single pass."""

import hashlib
import lzma
import os

import pytest

from images.models import Image, ImageReplica
from tenants.models import Quota
from tests.images.fetch.conftest import FileRoute
from tests.images.fetch.test_url_import import import_url
from tests.images.imports.conftest import MiB, stored_bytes

from .conftest import compress

pytestmark = pytest.mark.usefixtures("fetch_settings")


@pytest.mark.parametrize("codec", ["gzip", "xz", "zstd", "bzip2"])
def test_compressed_qcow2_by_url_is_stored_decompressed(
    codec, api, owner, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    packed = compress(qcow2_image, codec)
    server = http_server()
    # The name says nothing of the compression: the first bytes decide.
    server.routes["/fedora-cloud.qcow2"] = FileRoute(packed.read_bytes(), drop_at=packed.stat().st_size // 2)
    plain = qcow2_image.read_bytes()

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/fedora-cloud.qcow2"),
        django_capture_on_commit_callbacks,
        run_jobs,
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == plain
    assert image.size == len(plain) and image.virtual_size == 6 * MiB
    assert image.sha256 == hashlib.sha256(plain).hexdigest()
    assert image.compression == codec and image.compressed_size == packed.stat().st_size
    # The dropped connection resumed into the same decompressor: the second request asked for the rest.
    assert server.requests[1]["headers"]["Range"] == f"bytes={packed.stat().st_size // 2}-"


def test_compressed_raw_from_a_server_that_cannot_resume_restarts_its_decompressor(
    api, owner, standalone, disks, http_server, django_capture_on_commit_callbacks, run_jobs
):
    raw = disks.raw(size=8 * MiB)
    packed = compress(raw, "xz").read_bytes()
    server = http_server()
    server.routes["/disk.raw.xz"] = FileRoute(packed, ranges=False, drop_at=len(packed) // 2)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/disk.raw.xz"),
        django_capture_on_commit_callbacks,
        run_jobs,
        disk_format="raw",
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == raw.read_bytes()
    assert image.compression == "xz" and image.compressed_size == len(packed)


def test_compressed_vmdk_is_decompressed_into_staging_and_converted(
    api, owner, standalone, disks, http_server, django_capture_on_commit_callbacks, run_jobs
):
    raw = disks.raw(size=6 * MiB)
    packed = compress(disks.convert(raw, "vmdk"), "zstd").read_bytes()
    server = http_server()
    server.routes["/appliance.vmdk.zst"] = FileRoute(packed)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/appliance.vmdk.zst"),
        django_capture_on_commit_callbacks,
        run_jobs,
        disk_format="vmdk",
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.compression == "zstd"
    assert image.virtual_size == 6 * MiB


def test_gzip_of_random_bytes_claimed_as_qcow2_is_refused(
    api, owner, standalone, tmp_path, http_server, django_capture_on_commit_callbacks, run_jobs
):
    noise = tmp_path / "noise.qcow2"
    noise.write_bytes(os.urandom(2 * MiB))
    server = http_server()
    server.routes["/noise.qcow2.gz"] = FileRoute(compress(noise, "gzip").read_bytes())

    image = import_url(
        api, owner, standalone, server.url("/noise.qcow2.gz"), django_capture_on_commit_callbacks, run_jobs
    )

    assert image.status == Image.Status.FAILED
    assert "qcow2" in image.error
    assert not ImageReplica.objects.filter(image=image).exists()
    assert not any(standalone_files(standalone))


def standalone_files(storage):
    from pathlib import Path

    return [p for p in Path(storage.mount_path).rglob("*") if p.is_file() and p.stat().st_size > 0]


def xz_bomb(expanded_mib: int) -> bytes:
    """An xz file of about 10 MiB that expands to `expanded_mib` MiB of zeros: many small streams of
    64 MiB of zeros each, one after another (xz -dc reads them all)."""
    stream = lzma.compress(bytes(64 * MiB), preset=0)
    return stream * (expanded_mib // 64)


def test_xz_that_expands_past_the_quota_is_stopped_at_the_limit(
    api, owner, tenant, standalone, http_server, django_capture_on_commit_callbacks, run_jobs, settings
):
    settings.IMPORT_DECOMPRESS_MAX_RATIO = 0  # the size limit alone must stop it
    Quota.objects.update_or_create(tenant=tenant, defaults={"max_bytes": 200 * MiB})
    bomb = xz_bomb(64 * 1024)  # 64 GiB of zeros
    assert 5 * MiB < len(bomb) < 12 * MiB
    server = http_server()
    server.routes["/disk.raw.xz"] = FileRoute(bomb)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/disk.raw.xz"),
        django_capture_on_commit_callbacks,
        run_jobs,
        disk_format="raw",
    )

    assert image.status == Image.Status.FAILED
    assert "expands to more than the 200.0\xa0MB" in image.error
    assert not ImageReplica.objects.filter(image=image).exists()
    # It stopped where the limit was: far less than the whole 10 MiB was fetched... and decompressed.
    assert image.bytes_done <= 200 * MiB


def test_an_absurd_expansion_is_refused_early_by_the_ratio_limit(
    api, owner, standalone, http_server, django_capture_on_commit_callbacks, run_jobs
):
    server = http_server()
    server.routes["/disk.raw.xz"] = FileRoute(xz_bomb(64 * 1024))

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/disk.raw.xz"),
        django_capture_on_commit_callbacks,
        run_jobs,
        disk_format="raw",
    )

    assert image.status == Image.Status.FAILED
    assert "decompression bomb" in image.error


def test_image_page_and_api_show_the_compressed_size_beside_the_size(
    api,
    owner,
    owner_client,
    standalone,
    qcow2_image,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    from django.urls import reverse

    from tenants import services

    packed = compress(qcow2_image, "xz")
    server = http_server()
    server.routes["/cirros.qcow2.xz"] = FileRoute(packed.read_bytes())
    image = import_url(
        api, owner, standalone, server.url("/cirros.qcow2.xz"), django_capture_on_commit_callbacks, run_jobs
    )
    assert image.status == Image.Status.AVAILABLE, image.error

    page = owner_client.get(reverse("images:detail", args=[image.pk])).content.decode()
    assert "as imported, xz-compressed" in page
    from django.template.defaultfilters import filesizeformat

    assert str(filesizeformat(packed.stat().st_size)) in page

    _token, key = services.api_token_create(user=owner)
    detail = owner_client.get(f"/api/v1/images/{image.pk}/", HTTP_AUTHORIZATION=f"Token {key}").json()
    assert detail["compression"] == "xz" and detail["compressed_size"] == packed.stat().st_size
    assert detail["size"] == qcow2_image.stat().st_size


def test_a_truncated_zstd_from_a_server_without_a_length_fails_as_incomplete(
    api, owner, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    """No Content-Length, so only the stream itself can tell that it was cut off."""
    packed = compress(qcow2_image, "zstd").read_bytes()
    server = http_server()
    server.routes["/arch.qcow2.zst"] = FileRoute(packed[: len(packed) * 2 // 3], length=False)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/arch.qcow2.zst"),
        django_capture_on_commit_callbacks,
        run_jobs,
    )

    assert image.status == Image.Status.FAILED
    assert "zstd stream ends in the middle" in image.error
    assert not ImageReplica.objects.filter(image=image).exists()
