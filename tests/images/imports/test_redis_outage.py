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
import redis

from imageconsole.localredis import start_private_redis
from images.services.receiving import _lock_name
from tests.livesite import LiveConsole, database_url

MiB = 1024 * 1024
SIZE = 32 * MiB


class SlowBody:
    """A request body that comes at about `1 MiB / delay`, so that Redis can go away in the middle of it."""

    def __init__(self, data: bytes, delay: float):
        self.data, self.delay, self.position = data, delay, 0
        self.sending = threading.Event()  # set once the first MiB has gone: the request is under way

    def __len__(self):
        return len(self.data) - self.position

    def read(self, size=-1):
        size = MiB if size is None or size < 0 else min(size, MiB)
        if self.position and self.position // MiB != (self.position + size) // MiB:
            time.sleep(self.delay)  # once per MiB, however small the reads
        piece = self.data[self.position : self.position + size]
        self.position += len(piece)
        if self.position >= MiB:
            self.sending.set()
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


def _create(console, *, answer: bool = False) -> str | dict:
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
    return response.json() if answer else response.json()["id"]


def _finish(console, image_id) -> dict:
    # The reconciler (every minute under rqcron) enqueues a job Redis could not take during the outage.
    console.manage("shell", "-c", "from images.services.reconcile import reconcile; print(reconcile())")
    console.manage("rqworker", "--burst", "imports", "convert", "default", "maintenance")
    return console.api().get(f"{console.url}/api/v1/images/{image_id}/", timeout=30).json()


def _data():
    return random.Random(7).randbytes(SIZE)


def _tus_patch(console, image_id, body):
    api = console.api()
    api.headers["Tus-Resumable"] = "1.0.0"
    created = api.post(
        console.url + "/api/v1/uploads/",
        headers={
            "Upload-Length": str(len(body)),
            "Upload-Metadata": f"image_id {base64.b64encode(image_id.encode()).decode()}",
        },
        timeout=60,
    )
    assert created.status_code == 201, created.text
    return api.patch(
        created.headers["Location"],
        data=body,
        headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        timeout=300,
    )


def _wait_until_receiving(redis_url, image_ids) -> None:
    """Until the console holds both uploads' locks: it has begun receiving them (a loaded machine may
    still be setting up a request whose first MiB sits in the socket's buffers)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 120
    while not all(client.exists(_lock_name(image_id)) for image_id in image_ids):
        assert time.monotonic() < deadline, "the console did not begin receiving"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_put_and_a_tus_patch_ride_out_a_redis_restart(console, redis_server):
    put_image, tus_image = _create(console), _create(console)
    data = _data()
    answers = {}
    bodies = {"put": SlowBody(data, 0.1), "tus": SlowBody(data, 0.1)}

    def put():
        answers["put"] = console.api().put(
            f"{console.url}/api/v1/images/{put_image}/file", data=bodies["put"], timeout=300
        )

    def patch():
        answers["tus"] = _tus_patch(console, tus_image, bodies["tus"])

    senders = [threading.Thread(target=put), threading.Thread(target=patch)]
    for sender in senders:
        sender.start()
    for body in bodies.values():
        assert body.sending.wait(120)
    _wait_until_receiving(redis_server.url, [put_image, tus_image])
    outage = redis_server.outage(after=0.3, seconds=2.5)  # while both requests are sending
    for thread in [*senders, outage]:
        thread.join(300)
    assert answers["put"].status_code == 202, answers["put"].text
    assert answers["tus"].status_code == 204, answers["tus"].text
    assert answers["tus"].headers["Upload-Offset"] == str(SIZE)
    assert "Traceback" not in console.output()
    _finish(console, put_image)
    for image_id in (put_image, tus_image):
        image = console.api().get(f"{console.url}/api/v1/images/{image_id}/", timeout=30).json()
        assert (image["status"], image["size"]) == ("available", SIZE), image


@pytest.mark.django_db(transaction=True)
def test_an_upload_that_cannot_go_on_is_refused_clearly_and_can_be_sent_again(
    console, redis_server, tmp_path
):
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

    # A PUT whose client goes away after 8 MiB keeps what arrived: the client continues it with tus
    # from the server's offset (README: "A PUT that ends early").
    import hashlib
    import json
    import socket
    from urllib.parse import urlsplit

    created = _create(console, answer=True)
    image_id = created["id"]
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
    detail = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert detail["offset"] == 8 * MiB and "continue with tus" in detail["detail"]
    api = console.api()
    tus_url = detail["tus_url"]
    assert tus_url == f"{console.url}{created['upload']['tus_url']}"  # known from the creation on
    tus = {"Tus-Resumable": "1.0.0"}
    head = api.head(tus_url, headers=tus, timeout=30)
    assert head.headers["Upload-Offset"] == str(8 * MiB) and head.headers["Upload-Length"] == str(SIZE)
    patch = api.patch(
        tus_url,
        data=data[8 * MiB :],
        headers={**tus, "Upload-Offset": str(8 * MiB), "Content-Type": "application/offset+octet-stream"},
        timeout=300,
    )
    assert patch.status_code == 204, patch.text
    finished = _finish(console, image_id)
    assert finished["status"] == "available"
    assert finished["sha256"] == hashlib.sha256(data).hexdigest()

    # A new PUT still starts again from zero.
    image_id = _create(console)
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
        while connection.recv(65536):
            pass
    response = console.api().put(f"{console.url}/api/v1/images/{image_id}/file", data=data, timeout=300)
    assert response.status_code == 202, response.text
    assert _finish(console, image_id)["status"] == "available"
