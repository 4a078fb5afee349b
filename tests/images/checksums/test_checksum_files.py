"""A checksum file URL (SHA256SUMS, SHA512SUMS, CHECKSUM) served on loopback, fetched through the URL
import's guarded fetch layer at submit time: the line for the image's file name is its expected checksum."""

import hashlib

import pytest

from images.checksums import ChecksumError, entry_for, parse_checksum_file
from images.models import Image
from tests.images.fetch.conftest import FileRoute
from tests.images.fetch.test_url_import import body, import_url
from tests.images.imports.conftest import stored_bytes

from .conftest import compress, put

pytestmark = pytest.mark.usefixtures("fetch_settings")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_gnu_and_bsd_lines_are_read():
    text = (
        "# comment\n"
        f"{'a' * 64}  Fedora-Cloud-41.x86_64.raw.xz\n"
        f"{'b' * 64} *debian-12-genericcloud-amd64.qcow2\n"
        f"SHA256 (Fedora-Cloud-41.x86_64.qcow2) = {'C' * 64}\n"
        f"SHA512 (Fedora-Cloud-41.x86_64.qcow2) = {'d' * 128}\n"
        f"{'e' * 32}  ./openwrt-x86-64-generic-ext4-combined.img.gz\n"
        "-----BEGIN PGP SIGNATURE-----\n"
    )
    entries = parse_checksum_file(text)

    assert entry_for(entries, "Fedora-Cloud-41.x86_64.raw.xz").value == "a" * 64
    assert entry_for(entries, "debian-12-genericcloud-amd64.qcow2").algorithm == "sha256"
    # Listed twice: the stronger algorithm.
    fedora = entry_for(entries, "Fedora-Cloud-41.x86_64.qcow2")
    assert (fedora.algorithm, fedora.value) == ("sha512", "d" * 128)
    assert entry_for(entries, "openwrt-x86-64-generic-ext4-combined.img.gz").algorithm == "md5"
    with pytest.raises(ChecksumError, match="no entry for ubuntu.img"):
        entry_for(entries, "ubuntu.img", url="https://example.org/SHA256SUMS")


@pytest.mark.parametrize("style", ["gnu", "bsd-sha512"])
def test_url_import_takes_its_line_from_the_checksum_file(
    style, api, owner, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    packed = compress(qcow2_image, "xz").read_bytes()
    name = "Fedora-Cloud-Base-Generic-41.x86_64.qcow2.xz"
    if style == "gnu":
        sums = f"{sha256(b'other')}  other.iso\n{sha256(packed)} *{name}\n"
        expected = ("sha256", sha256(packed))
    else:
        value = hashlib.sha512(packed).hexdigest()
        sums = f"SHA512 (other.iso) = {hashlib.sha512(b'x').hexdigest()}\nSHA512 ({name}) = {value}\n"
        expected = ("sha512", value)
    server = http_server()
    server.routes[f"/pub/41/{name}"] = FileRoute(packed)
    server.routes["/pub/41/CHECKSUM"] = FileRoute(sums.encode())

    image = import_url(
        api,
        owner,
        standalone,
        server.url(f"/pub/41/{name}"),
        django_capture_on_commit_callbacks,
        run_jobs,
        checksum_file_url=server.url("/pub/41/CHECKSUM"),
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert (image.checksum_algorithm, image.checksum_expected) == expected
    assert image.checksum_of == "sent" and image.checksum_source == "file"
    assert image.checksum_file_url == server.url("/pub/41/CHECKSUM")
    assert image.checksum_verified_at is not None
    assert stored_bytes(image) == qcow2_image.read_bytes()


def test_a_file_that_is_not_the_one_listed_fails_naming_both(
    api, owner, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    packed = compress(qcow2_image, "gzip").read_bytes()
    listed = sha256(b"the file the publisher built")
    server = http_server()
    server.routes["/openwrt.img.gz"] = FileRoute(packed)
    server.routes["/sha256sums"] = FileRoute(f"{listed} *openwrt.img.gz\n".encode())

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/openwrt.img.gz"),
        django_capture_on_commit_callbacks,
        run_jobs,
        checksum_file_url=server.url("/sha256sums"),
    )

    assert image.status == Image.Status.FAILED
    assert listed in image.error and sha256(packed) in image.error


def test_a_missing_entry_is_refused_at_submit(api, owner, standalone, http_server):
    server = http_server()
    server.routes["/SHA256SUMS"] = FileRoute(f"{sha256(b'a')}  debian-12.qcow2\n".encode())

    response = api(
        owner,
        body(standalone, server.url("/images/ubuntu-24.04.img"), checksum_file_url=server.url("/SHA256SUMS")),
    )

    assert response.status_code == 400
    error = response.json()["checksum_file_url"][0]
    assert "no entry for ubuntu-24.04.img" in error and "debian-12.qcow2" in error
    assert not Image.objects.exists()


def test_a_checksum_file_on_a_refused_network_is_not_fetched(api, owner, standalone, http_server):
    server = http_server()

    response = api(
        owner,
        body(standalone, server.url("/disk.qcow2"), checksum_file_url="http://10.20.30.40/SHA256SUMS"),
    )

    assert response.status_code == 400
    assert "checksum_file_url" in response.json()
    assert not Image.objects.exists()


def test_a_checksum_and_a_checksum_file_are_not_both_given(api, owner, standalone, http_server):
    server = http_server()
    response = api(
        owner,
        body(standalone, server.url("/disk.qcow2"), checksum="a" * 64, checksum_file_url=server.url("/SUMS")),
    )
    assert response.status_code == 400 and "checksum_file_url" in response.json()
    assert server.requests == []


def test_upload_takes_its_line_by_its_file_name(
    client,
    api,
    owner,
    auth,
    standalone,
    qcow2_image,
    http_server,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    packed = compress(qcow2_image, "zstd").read_bytes()
    server = http_server()
    server.routes["/SHA256SUMS"] = FileRoute(f"{sha256(packed)}  arch-cloudimg.qcow2.zst\n".encode())
    upload = {
        "name": "arch",
        "disk_format": "qcow2",
        "os_type": "linux",
        "storage": standalone.pk,
        "checksum_file_url": server.url("/SHA256SUMS"),
    }

    without_name = api(owner, upload)
    response = api(owner, {**upload, "file_name": "arch-cloudimg.qcow2.zst"})

    assert without_name.status_code == 400 and "file name" in without_name.json()["checksum_file_url"][0]
    assert response.status_code == 201, response.json()
    image = Image.objects.get(pk=response.json()["id"])
    image = put(client, auth(owner), image, packed, django_capture_on_commit_callbacks, run_jobs)
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_source == "file" and image.checksum_verified_at is not None
