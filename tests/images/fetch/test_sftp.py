import logging
import os
from urllib.parse import quote

import pytest

from images.fetch import FetchError, URLRefused, fetch, split_secret, validate

from .conftest import SFTP_PASSWORD, SFTP_USER, MemorySink, sha256

# Host keys are trusted on first use and kept in the database, written from the fetch's own thread.
pytestmark = [pytest.mark.usefixtures("fetch_settings"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sftp_file(sftp_server, payload):
    (sftp_server.root / "srv").mkdir()
    (sftp_server.root / "srv" / "disk.qcow2").write_bytes(payload)
    return sftp_server


def _url(server, *, password=None, path="/srv/disk.qcow2"):
    secret = f":{quote(password, safe='')}" if password is not None else ""
    return f"sftp://{SFTP_USER}{secret}@127.0.0.1:{server.port}{path}"


def test_sftp_with_password(sftp_file, payload, caplog):
    caplog.set_level(logging.DEBUG)
    redacted, secret = split_secret(_url(sftp_file, password=SFTP_PASSWORD))
    sink = MemorySink()

    result = fetch(redacted, secret=secret, sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.announced_size == len(payload)
    assert sftp_file.logins == [("password", SFTP_USER)]
    assert SFTP_PASSWORD not in caplog.text


def test_sftp_with_the_administrators_key(sftp_file, sftp_client_key_file, payload, settings):
    settings.IMPORT_SFTP_KEY_FILE = str(sftp_client_key_file)
    sink = MemorySink()

    fetch(_url(sftp_file), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert ("publickey", SFTP_USER) in sftp_file.logins


def test_sftp_without_password_needs_a_configured_key(sftp_file):
    with pytest.raises(URLRefused) as refused:
        validate(_url(sftp_file))
    assert refused.value.rule == "credentials"
    assert "IMPORT_SFTP_KEY_FILE" in str(refused.value)
    assert sftp_file.logins == []


def test_wrong_sftp_password_is_refused(sftp_file):
    with pytest.raises(FetchError, match="refused the login of bob") as refused:
        fetch(_url(sftp_file, password="wrong-one"), sink=MemorySink())
    assert "wrong-one" not in str(refused.value)


def test_sftp_dropped_connection_resumes_by_seeking(sftp_server):
    # Bigger than the driver's read-ahead window, so that the drop comes after whole blocks arrived.
    payload = os.urandom(12 * 1024 * 1024 + 4321)
    (sftp_server.root / "disk.raw").write_bytes(payload)
    sftp_server.drop_at = 10 * 1024 * 1024
    sftp_server.drops = 1
    sink = MemorySink()

    result = fetch(_url(sftp_server, password=SFTP_PASSWORD, path="/disk.raw"), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.resumed == 1 and not result.restarted and sink.resets == 0
    assert len(sftp_server.logins) == 2
    assert sftp_server.first_reads[0] == 0 and sftp_server.first_reads[1] > 0


def test_sftp_known_hosts_pins_the_server(sftp_file, payload, settings, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sftp_file.known_hosts_line())
    settings.IMPORT_SFTP_KNOWN_HOSTS = str(known_hosts)
    sink = MemorySink()

    fetch(_url(sftp_file, password=SFTP_PASSWORD), sink=sink)
    assert sha256(sink.buffer) == sha256(payload)


def test_sftp_unknown_host_key_is_refused_before_the_password_is_sent(sftp_file, settings, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    settings.IMPORT_SFTP_KNOWN_HOSTS = str(known_hosts)

    with pytest.raises(FetchError, match="not in IMPORT_SFTP_KNOWN_HOSTS"):
        fetch(_url(sftp_file, password=SFTP_PASSWORD), sink=MemorySink())
    assert sftp_file.logins == []


def test_missing_sftp_file(sftp_file):
    with pytest.raises(FetchError, match="There is no file"):
        fetch(_url(sftp_file, password=SFTP_PASSWORD, path="/srv/none.qcow2"), sink=MemorySink())


def test_sftp_host_key_is_trusted_on_first_use_and_pinned_after(sftp_file, payload, caplog):
    import paramiko

    from images.fetch import FetchPolicy
    from images.models import SftpHostKey
    from images.services.hostkeys import trust_on_first_use

    # What the import service passes to every fetch.
    tofu = FetchPolicy.from_settings(sftp_host_key_check=trust_on_first_use)

    fetch(_url(sftp_file, password=SFTP_PASSWORD), sink=MemorySink(), policy=tofu)
    entry = SftpHostKey.objects.get()
    assert (entry.host, entry.port) == ("127.0.0.1", sftp_file.port)
    assert entry.key == sftp_file.host_key.get_base64()
    assert sftp_file.host_key.fingerprint in entry.fingerprint
    logins = len(sftp_file.logins)

    # The same server again: accepted.
    sink = MemorySink()
    fetch(_url(sftp_file, password=SFTP_PASSWORD), sink=sink, policy=tofu)
    assert sha256(sink.buffer) == sha256(payload)

    # Someone else answers at that address (or the server was rebuilt): refused before the password goes.
    sftp_file.host_key = paramiko.ECDSAKey.generate()
    with pytest.raises(FetchError, match="different host key") as refused:
        fetch(_url(sftp_file, password=SFTP_PASSWORD), sink=MemorySink(), policy=tofu)
    assert entry.fingerprint in str(refused.value) and sftp_file.host_key.fingerprint in str(refused.value)
    assert len(sftp_file.logins) == logins + 1  # only the second, accepted import logged in

    # An administrator removes the old key: the next import trusts the new one.
    entry.delete()
    fetch(_url(sftp_file, password=SFTP_PASSWORD), sink=MemorySink(), policy=tofu)
    assert SftpHostKey.objects.get().key == sftp_file.host_key.get_base64()


def test_sftp_host_keys_are_listed_for_administrators(admin_client, sftp_file):
    from images.fetch import FetchPolicy
    from images.services.hostkeys import trust_on_first_use

    policy = FetchPolicy.from_settings(sftp_host_key_check=trust_on_first_use)
    fetch(_url(sftp_file, password=SFTP_PASSWORD), sink=MemorySink(), policy=policy)
    page = admin_client.get("/admin/images/sftphostkey/")
    assert page.status_code == 200
    assert sftp_file.host_key.fingerprint in page.content.decode()
