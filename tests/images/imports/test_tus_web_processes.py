"""A tus upload whose PATCHes land on two web servers in turn (a reverse proxy without stickiness), over
one database, Redis, storage and staging: each PATCH continues from the receive state the previous one
kept with the offset, so nothing received is read again, also when a server is killed between two
PATCHes or in the middle of one. The servers are real gunicorn processes (tests/livesite.py); the RQ worker finishes the import.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from imageconsole.localredis import start_private_redis
from tests.livesite import LiveConsole, database_url

from .conftest import MiB

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def console(transactional_db, tmp_path, sqlite_template):
    redis, redis_url = start_private_redis(tmp_path / "redis", persist=False)
    live = None
    try:
        live = LiveConsole(
            tmp_path=tmp_path,
            db_url=database_url(tmp_path, sqlite_template),
            redis_url=redis_url,
            workers=1,
        )
        yield live
    finally:
        if live is not None:
            live.stop()
        redis.terminate()
        redis.wait(10)


def _create(console, fmt: str, size: int) -> str:
    response = console.api().post(
        console.url + "/api/v1/images/",
        json={
            "name": f"two servers {fmt}",
            "kind": "system",
            "disk_format": fmt,
            "os_type": "linux",
            "architecture": "x86_64",
            "boot_mode": "bios",
            "platform": "CentOS",
            "os_version": "7.9",
            "source": "upload",
            "size": size,
        },
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _tus_create(console, image_id: str, length: int) -> str:
    response = console.api().post(
        console.url + "/api/v1/uploads/",
        headers={
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": f"image_id {base64.b64encode(image_id.encode()).decode()}",
        },
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.headers["Location"].split("/api/v1/uploads/")[1]


def _patch(api: requests.Session, server: str, upload: str, offset: int, body: bytes) -> int:
    response = api.patch(
        f"{server}/api/v1/uploads/{upload}",
        data=body,
        headers={**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        timeout=120,
    )
    assert response.status_code == 204, (server, response.status_code, response.text)
    return int(response.headers["Upload-Offset"])


def _offset(server: str, upload: str, token: str) -> int:
    response = requests.head(
        f"{server}/api/v1/uploads/{upload}", headers={**TUS, "Authorization": f"Token {token}"}, timeout=30
    )
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def _wait_available(console, image_id: str) -> dict:
    deadline = time.monotonic() + 180
    while True:
        image = console.api().get(f"{console.url}/api/v1/images/{image_id}/", timeout=30).json()
        if image["status"] in ("available", "failed") or time.monotonic() > deadline:
            return image
        time.sleep(0.5)


def _kill_tree(process) -> None:
    """SIGKILL gunicorn's workers, then its master: a crash, not a shutdown."""
    children = []
    for task in os.listdir(f"/proc/{process.pid}/task"):
        with open(f"/proc/{process.pid}/task/{task}/children") as file:
            children += [int(child) for child in file.read().split()]
    for child in children:
        os.kill(child, signal.SIGKILL)
    process.send_signal(signal.SIGKILL)
    process.wait(30)


def _kill_mid_patch(console, server: str, process, upload: str, offset: int, body: bytes) -> None:
    url = urlsplit(server)
    with socket.create_connection((url.hostname, url.port), timeout=60) as connection:
        connection.sendall(
            (
                f"PATCH /api/v1/uploads/{upload} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Token {console.token}\r\nTus-Resumable: 1.0.0\r\n"
                f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[: len(body) // 2]
        )
        time.sleep(1)  # the server is receiving it
        _kill_tree(process)


def _expire_upload_lock(console, image_id: str) -> None:
    import redis

    from images.services.receiving import _lock_name

    redis.Redis.from_url(console.env["REDIS_URL"]).delete(_lock_name(image_id))


def _session(console, image_id: str) -> dict:
    """The upload's row as the servers left it: bytes read again, resumes."""
    out = console.manage(
        "shell",
        "-c",
        "import json; from images.models import UploadSession; "
        f"s = UploadSession.objects.get(image_id='{image_id}'); "
        "print(json.dumps({'bytes_reread': s.bytes_reread, 'resumes': s.resumes}))",
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("fmt", "chunk"),
    [
        ("qcow2", 4 * MiB),  # stored as it arrives: PATCHes on storage-chunk boundaries
        ("vmdk", 3 * MiB + 4097),  # staged for conversion: any PATCH size
    ],
)
def test_patches_alternating_between_two_servers_never_read_a_byte_again(console, disks, fmt, chunk):
    data = disks.convert(disks.raw(size=32 * MiB), fmt).read_bytes()
    image_id = _create(console, fmt, len(data))
    upload = _tus_create(console, image_id, len(data))
    other, other_process = console.start_web()
    servers = [console.url, other]
    api = console.api()
    offset, sent, killed_mid = 0, 0, False
    while offset < len(data):
        server = servers[sent % 2]
        offset = _patch(api, server, upload, offset, data[offset : offset + chunk])
        sent += 1
        assert _offset(servers[sent % 2], upload, console.token) == offset  # what the other one reports
        if sent == 2:  # the last PATCH went to the other server
            # Killed between two PATCHes: its live state is gone, the offset it acknowledged holds.
            other_process.send_signal(signal.SIGKILL)
            other_process.wait(30)
            offset = _patch(api, console.url, upload, offset, data[offset : offset + chunk])
            sent += 1
            other, other_process = console.start_web()  # a new process takes its place
            servers = [console.url, other]
        elif sent == 4:  # the last PATCH went to the new server
            # Killed in the middle of a PATCH: nothing of that PATCH counts, the offset stays.
            _kill_mid_patch(console, other, other_process, upload, offset, data[offset : offset + chunk])
            killed_mid = True
            assert _offset(console.url, upload, console.token) == offset
            # The dead request's upload lock lasts until it expires (LOCK_SECONDS); here it is gone now.
            _expire_upload_lock(console, image_id)
            offset = _patch(api, console.url, upload, offset, data[offset : offset + chunk])
            sent += 1
            other, other_process = console.start_web()
            servers = [console.url, other]
    assert sent >= 6 and killed_mid

    image = _wait_available(console, image_id)
    assert image["status"] == "available", image.get("error")
    if fmt == "qcow2":
        assert image["md5"] == hashlib.md5(data).hexdigest()
        assert image["sha256"] == hashlib.sha256(data).hexdigest()
    row = _session(console, image_id)
    assert row["bytes_reread"] == 0, row
    assert row["resumes"] == sent - 1


def _raw_patch(connection: socket.socket, host: str, upload: str, token: str, offset: int, body: bytes):
    """A PATCH whose headers and first body bytes go in one send (gunicorn reads them together), on a
    connection kept alive; returns the response's status and headers."""
    import http.client

    head = (
        f"PATCH /api/v1/uploads/{upload} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Token {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection.sendall(head + body[:100_000])
    connection.sendall(body[100_000:])
    response = http.client.HTTPResponse(connection)
    response.begin()
    response.read()
    return response.status, dict(response.getheaders())


def test_bodies_read_from_the_socket_leave_the_connection_usable(console, disks):
    """gunicorn's reader is bypassed for upload bodies (imageconsole.core.request_body): its count of the
    body is kept, so PATCHes and other requests follow each other on one kept-alive connection, and a
    client that goes away mid-body keeps what arrived."""
    data = disks.convert(disks.raw(size=24 * MiB), "qcow2").read_bytes()
    assert len(data) > 8 * MiB
    image_id = _create(console, "qcow2", len(data))
    upload = _tus_create(console, image_id, len(data))
    url = urlsplit(console.url)
    with socket.create_connection((url.hostname, url.port), timeout=60) as connection:
        for offset in (0, 2 * MiB, 4 * MiB):
            status, headers = _raw_patch(
                connection, url.netloc, upload, console.token, offset, data[offset : offset + 2 * MiB]
            )
            assert (status, headers["Upload-Offset"]) == (204, str(offset + 2 * MiB))
    # Gone halfway through a PATCH: what arrived is kept.
    rest = len(data) - 6 * MiB
    arrived = 6 * MiB + rest // 2
    with socket.create_connection((url.hostname, url.port), timeout=60) as connection:
        head = (
            f"PATCH /api/v1/uploads/{upload} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Token {console.token}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {6 * MiB}\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {rest}\r\n\r\n"
        ).encode()
        connection.sendall(head + data[6 * MiB : arrived])
        connection.shutdown(socket.SHUT_WR)
        connection.recv(65536)  # the answer to the short body, or the close
    deadline = time.monotonic() + 30
    while (offset := _offset(console.url, upload, console.token)) != arrived:
        assert time.monotonic() < deadline, offset
        time.sleep(0.2)
    with socket.create_connection((url.hostname, url.port), timeout=60) as connection:
        status, headers = _raw_patch(connection, url.netloc, upload, console.token, offset, data[offset:])
        assert (status, headers["Upload-Offset"]) == (204, str(len(data)))
    image = _wait_available(console, image_id)
    assert image["status"] == "available", image.get("error")
    assert image["md5"] == hashlib.md5(data).hexdigest()
