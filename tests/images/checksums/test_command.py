"""manage.py importimage takes the checksum options, for a URL and for a local file."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from images.models import Image
from tests.images.fetch.conftest import FileRoute

from .conftest import compress

pytestmark = pytest.mark.usefixtures("fetch_settings")


def importimage(*args):
    out = StringIO()
    call_command("importimage", *args, "--tenant", "acme", "--format", "qcow2", stdout=out)
    return out.getvalue()


def test_importimage_url_with_a_checksum_file(
    tenant, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    packed = compress(qcow2_image, "zstd").read_bytes()
    server = http_server()
    server.routes["/arch/Arch-Linux-x86_64-cloudimg.qcow2.zst"] = FileRoute(packed)
    server.routes["/arch/SHA256SUMS"] = FileRoute(
        f"{hashlib.sha256(packed).hexdigest()}  Arch-Linux-x86_64-cloudimg.qcow2.zst\n".encode()
    )

    with django_capture_on_commit_callbacks(execute=True):
        importimage(
            "--url",
            server.url("/arch/Arch-Linux-x86_64-cloudimg.qcow2.zst"),
            "--name",
            "arch",
            "--storage",
            standalone.name,
            "--checksum-file-url",
            server.url("/arch/SHA256SUMS"),
            "--background",
        )
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    image = Image.objects.get(name="arch")
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_source == "file" and image.checksum_verified_at is not None


def test_importimage_url_with_a_wrong_sha1_fails_naming_both(
    tenant, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    data = qcow2_image.read_bytes()
    server = http_server()
    server.routes["/disk.qcow2"] = FileRoute(data)
    wrong = hashlib.sha1(b"x").hexdigest()

    with django_capture_on_commit_callbacks(execute=True):
        importimage(
            "--url",
            server.url("/disk.qcow2"),
            "--name",
            "disk",
            "--storage",
            standalone.name,
            "--checksum",
            wrong,
            "--checksum-algorithm",
            "sha1",
            "--background",
        )
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    image = Image.objects.get(name="disk")
    assert image.status == Image.Status.FAILED
    assert wrong in image.error and hashlib.sha1(data).hexdigest() in image.error


def test_importimage_file_with_sha512(tenant, standalone, qcow2_image, django_capture_on_commit_callbacks):
    value = hashlib.sha512(qcow2_image.read_bytes()).hexdigest()
    with django_capture_on_commit_callbacks(execute=True):
        out = importimage(
            str(qcow2_image), "--name", "local", "--storage", standalone.name, "--checksum", value
        )

    assert f"Checksum verified: SHA-512 {value}" in out
    assert Image.objects.get(name="local").checksum_verified_at is not None


def test_importimage_file_missing_from_the_checksum_file_creates_nothing(
    tenant, standalone, qcow2_image, http_server
):
    server = http_server()
    server.routes["/SHA256SUMS"] = FileRoute(f"{'a' * 64}  other.qcow2\n".encode())
    with pytest.raises(CommandError, match=f"no entry for {qcow2_image.name}"):
        importimage(
            str(qcow2_image),
            "--name",
            "local",
            "--storage",
            standalone.name,
            "--checksum-file-url",
            server.url("/SHA256SUMS"),
        )
    assert not Image.objects.exists()


@pytest.mark.parametrize("of", ["sent", "image"])
def test_importimage_of_a_compressed_file_decompresses_and_verifies(
    of, tenant, standalone, qcow2_image, django_capture_on_commit_callbacks
):
    packed = compress(qcow2_image, "xz")
    value = hashlib.sha512((packed if of == "sent" else qcow2_image).read_bytes()).hexdigest()
    with django_capture_on_commit_callbacks(execute=True):
        out = importimage(
            str(packed),
            "--name",
            "packed",
            "--storage",
            standalone.name,
            "--checksum",
            value,
            "--checksum-of",
            of,
        )

    image = Image.objects.get(name="packed")
    assert "Available:" in out and f"Checksum verified: SHA-512 {value}" in out
    assert image.status == Image.Status.AVAILABLE and image.compression == "xz"
    assert image.size == qcow2_image.stat().st_size


def test_importimage_of_a_compressed_file_with_a_wrong_checksum_fails(
    tenant, standalone, qcow2_image, django_capture_on_commit_callbacks
):
    packed = compress(qcow2_image, "gzip")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(CommandError, match="Checksum mismatch"),
    ):
        importimage(str(packed), "--name", "packed", "--storage", standalone.name, "--checksum", "0" * 64)
    assert Image.objects.get(name="packed").status == Image.Status.FAILED
