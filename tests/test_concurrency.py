"""Concurrent users on the served console: no request may fail with a server error.

Eight clients create, edit, cancel and delete (one by one and in batches) for several seconds while a
file is uploaded with one PUT, all against gunicorn processes and an RQ worker sharing one database:
a SQLite file locally (the default database of `make run`), the PostgreSQL test database in CI.
"""

import random
import threading
import time
from collections import Counter

import pytest
import requests

from tests.livesite import LiveConsole, database_url

MiB = 1024 * 1024
CLIENTS = 8
SECONDS = 10


@pytest.fixture
def live_console(transactional_db, tmp_path, sqlite_template):
    import os

    redis_url = os.environ["REDIS_URL"].replace("db=0", "db=7")
    console = LiveConsole(
        tmp_path=tmp_path, db_url=database_url(tmp_path, sqlite_template), redis_url=redis_url
    )
    yield console
    console.stop()


def _client(
    console: LiveConsole, number: int, start: threading.Barrier, stop: threading.Event, codes, errors
):
    rnd = random.Random(number)
    api = console.api()
    web = console.browser_session()  # logging in hashes a password: before the clock starts
    mine: list[str] = []
    start.wait()

    def call(session, method, path, kind="read", **kwargs):
        try:
            response = session.request(method, console.url + path, timeout=120, **kwargs)
        except requests.RequestException as error:
            errors.append(f"{method} {path}: {error!r}")
            return None
        codes[response.status_code] += 1
        if response.status_code < 400:
            codes[kind] += 1
        if response.status_code >= 500:
            errors.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    # At least one round of three images each, so every kind of request runs whatever the machine's load.
    while not stop.is_set() or len(mine) < 3:
        created = call(
            api,
            "POST",
            "/api/v1/images/",
            "create",
            json={
                "name": f"c{number}-{len(mine)}",
                "kind": "system",
                "disk_format": "qcow2",
                "os_type": "linux",
                "architecture": "x86_64",
                "boot_mode": "bios",
                "platform": "CentOS",
                "os_version": "7.9",
                "source": "upload",
                "size": 1 * MiB,
            },
        )
        if created is None or created.status_code != 201:
            continue
        image_id = created.json()["id"]
        mine.append(image_id)
        call(api, "PATCH", f"/api/v1/images/{image_id}/", "edit", json={"description": f"edited by {number}"})
        call(api, "GET", f"/api/v1/images/{image_id}/")
        if len(mine) % 3 or rnd.random() < 0.5:
            call(api, "POST", f"/api/v1/images/{image_id}/cancel", "cancel")
        if len(mine) % 3 == 0:
            picked = mine[-3:]
            if (number + len(mine) // 3) % 2:
                call(web, "POST", "/images/batch-delete/", "batch delete", data={"ids": picked})
            else:
                for pk in picked:
                    call(api, "DELETE", f"/api/v1/images/{pk}/", "delete")
        call(api, "GET", "/api/v1/images/?page_size=20")
        call(web, "GET", "/images/")


@pytest.mark.django_db(transaction=True)
def test_eight_clients_and_an_upload_get_no_server_error(live_console, tmp_path):
    console = live_console
    payload = tmp_path / "disk.raw"
    with open(payload, "wb") as out:
        rnd = random.Random(0)
        for _ in range(64):
            out.write(rnd.randbytes(MiB))
    api = console.api()
    created = api.post(
        console.url + "/api/v1/images/",
        json={
            "name": "big upload",
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
    assert created.status_code == 201, created.text
    upload_id = created.json()["id"]

    stop = threading.Event()
    codes: Counter = Counter()
    errors: list[str] = []
    start = threading.Barrier(CLIENTS + 1)
    clients = [
        threading.Thread(target=_client, args=(console, n, start, stop, codes, errors))
        for n in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    start.wait(120)
    time.sleep(0.5)
    upload: dict = {}

    def put():
        with open(payload, "rb") as body:
            upload["response"] = api.put(
                f"{console.url}/api/v1/images/{upload_id}/file",
                data=body,
                headers={"Content-Length": str(payload.stat().st_size)},
                timeout=300,
            )

    uploader = threading.Thread(target=put)
    uploader.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in [*clients, uploader]:
        thread.join(300)

    assert not errors, f"{len(errors)} failures, e.g. {errors[:5]}\ncodes: {dict(codes)}\n{console.output()}"
    # The clients did each kind of work (how much depends on the machine's load).
    assert all(codes[kind] for kind in ("create", "edit", "cancel", "delete", "batch delete", "read")), codes
    assert upload["response"].status_code == 202, upload["response"].text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        image = api.get(f"{console.url}/api/v1/images/{upload_id}/", timeout=30).json()
        if image["status"] != "uploading":
            break
        time.sleep(0.5)
    assert image["status"] == "available", image
    assert image["size"] == 64 * MiB
