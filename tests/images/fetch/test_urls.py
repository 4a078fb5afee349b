"""Seed 002's URL syntaxes, and passwords that are never shown."""

import pytest

from imageconsole.core import crypto
from images.fetch import FetchError, URLRefused, fetch, redact, split_secret, urls, validate


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path", "user", "has_password"),
    [
        (
            "http://mirror.example.org/images/disk.qcow2",
            "http",
            "mirror.example.org",
            80,
            "/images/disk.qcow2",
            "",
            False,
        ),
        (
            "https://mirror.example.org:8443/a/b.iso",
            "https",
            "mirror.example.org",
            8443,
            "/a/b.iso",
            "",
            False,
        ),
        ("ftp://ftp.example.org/pub/disk.raw", "ftp", "ftp.example.org", 21, "/pub/disk.raw", "", False),
        (
            "ftp://alice:pw@ftp.example.org:2121/pub/disk.raw",
            "ftp",
            "ftp.example.org",
            2121,
            "/pub/disk.raw",
            "alice",
            True,
        ),
        (
            "sftp://bob:pw@files.example.org/srv/disk.vmdk",
            "sftp",
            "files.example.org",
            22,
            "/srv/disk.vmdk",
            "bob",
            True,
        ),
        (
            "sftp://bob@files.example.org:2222/srv/disk.vmdk",
            "sftp",
            "files.example.org",
            2222,
            "/srv/disk.vmdk",
            "bob",
            False,
        ),
        ("file:///opt/dvd/image-1.4.qcow2", "file", "", 0, "/opt/dvd/image-1.4.qcow2", "", False),
        (
            "HTTP://Mirror.Example.ORG/Disk%20One.qcow2",
            "http",
            "mirror.example.org",
            80,
            "/Disk One.qcow2",
            "",
            False,
        ),
        ("http://[2001:db8::1]:8080/disk.qcow2", "http", "2001:db8::1", 8080, "/disk.qcow2", "", False),
    ],
)
def test_seed_syntaxes_parse(url, scheme, host, port, path, user, has_password):
    parsed, _password = urls.parse(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path, parsed.username, parsed.has_password) == (
        scheme,
        host,
        port,
        path,
        user,
        has_password,
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "mirror.example.org/disk.qcow2",
        "http://mirror.example.org/",
        "http:///disk.qcow2",
        "ftp://ftp.example.org/pub/",
        "sftp://files.example.org/srv/disk.vmdk",  # no user
        "http://mirror.example.org/disk one.qcow2",
        "http://mirror.example.org/disk\r\n.qcow2",
        "ftp://ftp.example.org/disk%0d%0aDELE%20x",
        "http://mirror.example.org:99999/disk.qcow2",
        "http://mirror.example.org:0/disk.qcow2",
        "http://[fe80::1%25eth0]/disk.qcow2",
        "http://mir ror/disk.qcow2",
        "http://999.1.1.1.1/disk.qcow2",
        "file://otherhost/etc/disk.qcow2",
        "file:///opt/dvd/",
        "gopher://mirror.example.org/1",
        "dict://mirror.example.org:2628/d:x",
    ],
)
def test_bad_urls_are_refused_with_a_message(url, settings):
    with pytest.raises(URLRefused) as refused:
        validate(url, allow_file=True)
    assert str(refused.value)


def test_redacted_url_hides_the_password_and_the_secret_is_encrypted():
    redacted, secret = split_secret("ftp://alice:p%40ss@ftp.example.org/pub/disk.raw")

    assert redacted == "ftp://alice:***@ftp.example.org/pub/disk.raw"
    assert "p@ss" not in secret and "p%40ss" not in secret
    assert crypto.decrypt(secret) == "p@ss"


def test_url_without_password_has_no_secret():
    assert split_secret("sftp://bob@files.example.org/srv/disk.vmdk") == (
        "sftp://bob@files.example.org/srv/disk.vmdk",
        "",
    )


def test_redact_works_on_any_text():
    assert redact("failed: sftp://bob:hunter2@10.0.0.1/x and ftp://a:b@c/d") == (
        "failed: sftp://bob:***@10.0.0.1/x and ftp://a:***@c/d"
    )


def test_a_redacted_url_without_its_secret_cannot_be_fetched(settings):
    with pytest.raises(FetchError, match="no longer kept"):
        fetch("ftp://alice:***@ftp.example.org/pub/disk.raw", sink=bytearray().extend)
