import logging
from urllib.parse import quote

import pytest

from images.fetch import FetchError, TooLarge, fetch, split_secret

from .conftest import FTP_PASSWORD, FTP_USER, MemorySink, sha256

pytestmark = pytest.mark.usefixtures("fetch_settings")


def _url(server, path="pub/disk.raw", user=None, password=None):
    userinfo = ""
    if user:
        userinfo = (
            quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "") + "@"
        )
    return f"ftp://{userinfo}127.0.0.1:{server.port}/{path}"


@pytest.fixture
def ftp_file(ftp_server, payload):
    (ftp_server.root / "pub").mkdir()
    (ftp_server.root / "pub" / "disk.raw").write_bytes(payload)
    return ftp_server


def test_anonymous_ftp(ftp_file, payload):
    sink = MemorySink()

    result = fetch(_url(ftp_file), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.announced_size == len(payload)


def test_ftp_with_user_and_password_kept_encrypted(ftp_file, payload, caplog):
    caplog.set_level(logging.DEBUG)
    redacted, secret = split_secret(_url(ftp_file, user=FTP_USER, password=FTP_PASSWORD))
    sink = MemorySink()

    result = fetch(redacted, secret=secret, sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert ":***@" in result.url
    assert FTP_PASSWORD not in caplog.text and quote(FTP_PASSWORD, safe="") not in caplog.text
    assert redacted in caplog.text


def test_wrong_ftp_password_is_refused_without_showing_it(ftp_file, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FetchError, match="refused the login of alice") as refused:
        fetch(_url(ftp_file, user=FTP_USER, password="not-the-password"), sink=MemorySink())
    assert "not-the-password" not in str(refused.value)
    assert "not-the-password" not in caplog.text


def test_ftp_dropped_transfer_resumes_with_rest(ftp_file, payload):
    ftp_file.options["drop_first_at"] = len(payload) // 2
    sink = MemorySink()

    result = fetch(_url(ftp_file), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.resumed == 1 and not result.restarted and sink.resets == 0
    assert ftp_file.options["retr"] == 2


def test_ftp_server_without_rest_restarts_from_zero(ftp_file, payload):
    ftp_file.options["drop_first_at"] = len(payload) // 2
    ftp_file.options["no_rest"] = True
    sink = MemorySink()

    result = fetch(_url(ftp_file), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.restarted and sink.resets == 1


def test_ftp_server_sending_more_than_its_size_is_cut_off(ftp_file, payload):
    ftp_file.options["size_delta"] = -1000
    sink = MemorySink()

    with pytest.raises(TooLarge, match="more than"):
        fetch(_url(ftp_file), sink=sink)
    assert len(sink.buffer) <= len(payload) - 1000


def test_ftp_size_is_checked_before_the_transfer(ftp_file, payload):
    seen = []

    def check_length(length):
        seen.append(length)
        raise FetchError("over quota")

    with pytest.raises(FetchError, match="over quota"):
        fetch(_url(ftp_file), sink=MemorySink(), check_length=check_length)
    assert seen == [len(payload)]
    assert ftp_file.options["retr"] == 0


def test_missing_ftp_file(ftp_file):
    with pytest.raises(FetchError, match="550"):
        fetch(_url(ftp_file, "pub/none.raw"), sink=MemorySink())
