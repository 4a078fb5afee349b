"""Redis stops and comes back while an upload is sent (a PUT, a tus PATCH): the request completes, or,
when Redis is away as an upload starts, fails with a clear 503 and the upload can be sent again.

The console is served by gunicorn on its own Redis (a private redis-server this test stops and
restarts at the same socket), as in production where Redis is restarted under running uploads.
"""

import base64
import random
import threading
import time

import pytest

from imageconsole.localredis import start_private_redis
from tests.livesite import LiveConsole, database_url

MiB = 1024 * 1024
SIZE = 48 * MiB


class SlowBody:
    """A request body read in 1 MiB pieces, slowly, so that Redis can go away in the middle of it."""

    def __init__(self, data: bytes, delay: float):
        self.data, self.delay, self.position = data, delay, 0

    def __len__(self):
        return len(self.data) - self.position

    def read(self, size=-1):
        if self.position:
            time.sleep(self.delay)
        size = MiB if size is None or size < 0 else min(size, MiB)
        piece = self.data[self.position : self.position + size]
        self.position += len(piece)
        return piece


class Redis:
    def __init__(self, directory):
        self.directory = directory
        self.process, self.url = start_private_redis(directory, persist=False)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)

    def start(self):
        self.process, url = start_private_redis(self.directory, persist=False)
        assert url == self.url

    def outage(self, *, after: float, seconds: float):
        def run():
            time.sleep(after)
            self.stop()
            time.sleep(seconds)
            self.start()

        thread = threading.Thread(target=run)
        thread.start()
        return thread


@pytest.fixture
def redis_server(tmp_path):
    server = Redis(tmp_path / "redis")
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def console(transactional_db, tmp_path, sqlite_template, redis_server):
    live = LiveConsole(
        tmp_path=tmp_path,
        db_url=database_url(tmp_path, sqlite_template),
        redis_url=redis_server.url,
        rq_worker=False,
    )
    yield live
    live.stop()


def _create(console) -> str:
    response = console.api().post(
        console.url + "/api/v1/images/",
        json={
            "name": "during an outage",
            "kind": "system",
            "disk_format": "raw",
            "os_type": "linux",
            "architecture": "x86_64",
            "boot_mode": "bios",
            "platform": "CentOS",
            "os_version": "7.9",
            "source": "upload",
        },
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _finish(console, image_id) -> dict:
    console.manage("rqworker", "--burst", "imports", "convert", "default", "maintenance")
    return console.api().get(f"{console.url}/api/v1/images/{image_id}/", timeout=30).json()


def _data():
    return random.Random(7).randbytes(SIZE)


@pytest.mark.django_db(transaction=True)
def test_a_put_rides_out_a_redis_restart(console, redis_server):
    image_id = _create(console)
    data = _data()
    outage = redis_server.outage(after=1.5, seconds=3)
    response = console.api().put(
        f"{console.url}/api/v1/images/{image_id}/file", data=SlowBody(data, 0.12), timeout=300
    )
    outage.join()
    assert response.status_code == 202, response.text
    assert "Traceback" not in console.output()
    image = _finish(console, image_id)
    assert (image["status"], image["size"]) == ("available", SIZE), image


@pytest.mark.django_db(transaction=True)
def test_a_tus_patch_rides_out_a_redis_restart(console, redis_server):
    image_id = _create(console)
    data = _data()
    api = console.api()
    api.headers["Tus-Resumable"] = "1.0.0"
    created = api.post(
        console.url + "/api/v1/uploads/",
        headers={
            "Upload-Length": str(SIZE),
            "Upload-Metadata": f"image_id {base64.b64encode(image_id.encode()).decode()}",
        },
        timeout=60,
    )
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    outage = redis_server.outage(after=1.5, seconds=3)
    response = api.patch(
        location,
        data=SlowBody(data, 0.12),
        headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        timeout=300,
    )
    outage.join()
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(SIZE)
    assert "Traceback" not in console.output()
    image = _finish(console, image_id)
    assert (image["status"], image["size"]) == ("available", SIZE), image


@pytest.mark.django_db(transaction=True)
def test_an_upload_started_while_redis_is_away_gets_a_503_and_can_be_sent_again(console, redis_server):
    image_id = _create(console)
    data = _data()
    redis_server.stop()
    api = console.api()
    response = api.put(f"{console.url}/api/v1/images/{image_id}/file", data=data, timeout=300)
    assert response.status_code == 503, response.text
    assert "Redis" in response.json()["detail"] and response.headers["Retry-After"]
    image = api.get(f"{console.url}/api/v1/images/{image_id}/", timeout=30).json()
    assert image["status"] == "uploading"
    redis_server.start()
    response = api.put(f"{console.url}/api/v1/images/{image_id}/file", data=data, timeout=300)
    assert response.status_code == 202, response.text
    assert _finish(console, image_id)["status"] == "available"


@pytest.mark.django_db(transaction=True)
def test_a_put_cut_short_keeps_nothing_and_takes_a_new_put(console, tmp_path):
    """The client goes away after 8 of 48 MiB: a PUT cannot be resumed, so nothing of it stays on disk
    and the image takes the next PUT."""
    import socket
    from urllib.parse import urlsplit

    image_id = _create(console)
    data = _data()
    url = urlsplit(console.url)
    with socket.create_connection((url.hostname, url.port), timeout=60) as connection:
        connection.sendall(
            (
                f"PUT /api/v1/images/{image_id}/file HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Token {console.token}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {SIZE}\r\nConnection: close\r\n\r\n"
            ).encode()
            + data[: 8 * MiB]
        )
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"nothing of it was kept" in answer
    staging = tmp_path / "var" / "staging" / image_id
    assert not staging.exists() or not any(
        path.stat().st_size for path in staging.rglob("*") if path.is_file()
    )
    response = console.api().put(f"{console.url}/api/v1/images/{image_id}/file", data=data, timeout=300)
    assert response.status_code == 202, response.text
    assert _finish(console, image_id)["status"] == "available"
