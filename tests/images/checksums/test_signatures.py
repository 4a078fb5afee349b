"""A signed SHA256SUMS: a key generated in the test (gpg, no passphrase, a temporary GNUPGHOME) signs it,
a loopback server serves it with its detached signature; administrators trust the key in Django admin."""

import hashlib
import shutil
import subprocess
import tempfile

import pytest

from images.models import Image, TrustedSigningKey
from tests.images.fetch.conftest import FileRoute
from tests.images.fetch.test_url_import import body, import_url

from .conftest import compress

pytestmark = pytest.mark.usefixtures("fetch_settings")


class Signer:
    """A throw-away OpenPGP key in its own GNUPGHOME (short path: gpg-agent's socket lives there)."""

    def __init__(self, uid):
        if shutil.which("gpg") is None:
            pytest.fail("gpg is not installed (apt-get install gnupg)")
        self.home = tempfile.mkdtemp(prefix="gpg-")
        self.gpg("--quick-gen-key", uid, "ed25519", "sign", "never")
        self.public = self.gpg("--armor", "--export").decode()

    def gpg(self, *args, data=None):
        return subprocess.run(
            [
                "gpg",
                "--homedir",
                self.home,
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ],
            input=data,
            capture_output=True,
            check=True,
        ).stdout

    def sign(self, data: bytes, *, armor=False) -> bytes:
        return self.gpg("--detach-sign", *(["--armor"] if armor else []), "--output", "-", data=data)

    def close(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def signer():
    made = []

    def make(uid="Image Publisher <release@example.org>"):
        made.append(Signer(uid))
        return made[-1]

    yield make
    for one in made:
        one.close()


def trust(admin_client, signer):
    """An administrator adds the key in Django admin; its fingerprint is read from the key."""
    response = admin_client.post(
        "/admin/images/trustedsigningkey/add/",
        {"name": "Image Publisher", "armored_key": signer.public, "enabled": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return TrustedSigningKey.objects.get()


@pytest.fixture
def published(http_server, qcow2_image):
    """A compressed image, its SHA256SUMS and the server they are on."""
    packed = compress(qcow2_image, "xz").read_bytes()
    server = http_server()
    server.routes["/releases/noble/noble-server-cloudimg-amd64.img"] = FileRoute(packed)
    sums = (
        f"{hashlib.sha256(b'other').hexdigest()} *noble-server-cloudimg-arm64.img\n"
        f"{hashlib.sha256(packed).hexdigest()} *noble-server-cloudimg-amd64.img\n"
    ).encode()
    return server, packed, sums


def test_a_signed_checksum_file_verifies(
    api, owner, admin_client, standalone, signer, published, django_capture_on_commit_callbacks, run_jobs
):
    server, packed, sums = published
    key = signer()
    trusted = trust(admin_client, key)
    server.routes["/releases/noble/SHA256SUMS"] = FileRoute(sums)
    server.routes["/releases/noble/SHA256SUMS.gpg"] = FileRoute(key.sign(sums))

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/releases/noble/noble-server-cloudimg-amd64.img"),
        django_capture_on_commit_callbacks,
        run_jobs,
        disk_format="qcow2",
        checksum_file_url=server.url("/releases/noble/SHA256SUMS"),
        checksum_signature_url=server.url("/releases/noble/SHA256SUMS.gpg"),
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_source == "signed" and image.checksum_verified_at is not None
    assert image.checksum_expected == hashlib.sha256(packed).hexdigest()
    assert trusted.fingerprint and trusted.fingerprint in image.checksum_signer
    assert image.checksum_signature_url == server.url("/releases/noble/SHA256SUMS.gpg")


def test_an_armoured_signature_verifies_too(api, owner, admin_client, standalone, signer, published):
    server, _packed, sums = published
    key = signer()
    trust(admin_client, key)
    server.routes["/SHA256SUMS"] = FileRoute(sums)
    server.routes["/SHA256SUMS.asc"] = FileRoute(key.sign(sums, armor=True))

    response = api(
        owner,
        body(
            standalone,
            server.url("/releases/noble/noble-server-cloudimg-amd64.img"),
            checksum_file_url=server.url("/SHA256SUMS"),
            checksum_signature_url=server.url("/SHA256SUMS.asc"),
        ),
    )

    assert response.status_code == 201, response.json()
    assert response.json()["checksum_source"] == "signed"


def test_a_tampered_checksum_file_fails(api, owner, admin_client, standalone, signer, published):
    server, packed, sums = published
    key = signer()
    trust(admin_client, key)
    # Someone replaced the image and its line after the publisher signed.
    tampered = sums.replace(
        hashlib.sha256(packed).hexdigest().encode(), hashlib.sha256(b"evil").hexdigest().encode()
    )
    server.routes["/SHA256SUMS"] = FileRoute(tampered)
    server.routes["/SHA256SUMS.gpg"] = FileRoute(key.sign(sums))

    response = api(
        owner,
        body(
            standalone,
            server.url("/releases/noble/noble-server-cloudimg-amd64.img"),
            checksum_file_url=server.url("/SHA256SUMS"),
            checksum_signature_url=server.url("/SHA256SUMS.gpg"),
        ),
    )

    assert response.status_code == 400
    assert "does not verify" in response.json()["checksum_signature_url"][0]
    assert not Image.objects.exists()


def test_a_key_nobody_trusted_fails(api, owner, admin_client, standalone, signer, published):
    server, _packed, sums = published
    trust(admin_client, signer("Trusted One <one@example.org>"))
    stranger = signer("Stranger <stranger@example.org>")
    server.routes["/SHA256SUMS"] = FileRoute(sums)
    server.routes["/SHA256SUMS.gpg"] = FileRoute(stranger.sign(sums))

    response = api(
        owner,
        body(
            standalone,
            server.url("/releases/noble/noble-server-cloudimg-amd64.img"),
            checksum_file_url=server.url("/SHA256SUMS"),
            checksum_signature_url=server.url("/SHA256SUMS.gpg"),
        ),
    )

    assert response.status_code == 400
    assert "not among the trusted signing keys" in response.json()["checksum_signature_url"][0]
    assert not Image.objects.exists()


def test_a_disabled_key_is_not_trusted(api, owner, admin_client, standalone, signer, published):
    server, _packed, sums = published
    key = signer()
    trust(admin_client, key)
    TrustedSigningKey.objects.update(enabled=False)
    server.routes["/SHA256SUMS"] = FileRoute(sums)
    server.routes["/SHA256SUMS.gpg"] = FileRoute(key.sign(sums))

    response = api(
        owner,
        body(
            standalone,
            server.url("/releases/noble/noble-server-cloudimg-amd64.img"),
            checksum_file_url=server.url("/SHA256SUMS"),
            checksum_signature_url=server.url("/SHA256SUMS.gpg"),
        ),
    )

    assert response.status_code == 400 and "checksum_signature_url" in response.json()


def test_admin_refuses_what_is_not_a_public_key(admin_client, db):
    response = admin_client.post(
        "/admin/images/trustedsigningkey/add/", {"name": "x", "armored_key": "not a key", "enabled": "on"}
    )
    assert response.status_code == 200 and "exactly one OpenPGP public key" in response.content.decode()
    assert not TrustedSigningKey.objects.exists()
