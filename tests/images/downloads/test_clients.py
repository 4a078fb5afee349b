"""Real download tools against a live server: curl -C - and wget -c killed half-way and resumed,
aria2c with eight ranged connections, curl's HEAD, multi-range and unsatisfiable ranges; on a standalone
storage (streamed from its chunks) and a distributed one (moto's S3 server, after the redirect)."""

import hashlib
import shutil
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest

from images.downloads import services

from .conftest import MiB

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = ("curl", "wget", "aria2c")


@pytest.fixture(autouse=True)
def _clients_installed():
    missing = [name for name in CLIENTS if shutil.which(name) is None]
    if missing:
        pytest.fail(f"install {', '.join(missing)} (apt-get install curl wget aria2)")


@pytest.fixture(autouse=True)
def _requests_done():
    """Let the live server finish the requests a tool left behind (aria2c opens more connections than
    it uses; a killed client's request is still being answered) before the database is flushed."""
    yield
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not any("process_request_thread" in thread.name for thread in threading.enumerate()):
            break
        time.sleep(0.05)


@pytest.fixture(params=["standalone", "distributed"])
def storage(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def link_url(live_server, store_image):
    def make(storage, **kwargs):
        image = store_image(storage, **kwargs)
        link, token = services.link_create(image=image, actor=None)
        return image, live_server.url + services.link_path(link, token)

    return make


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def killed_halfway(command, output, *, at_least: int, cwd) -> None:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if output.exists() and output.stat().st_size >= at_least:
                break
            assert process.poll() is None, "the download ended before it could be interrupted"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()


def test_curl_resumes_after_being_killed(storage, link_url, tmp_path):
    image, url = link_url(storage, size=24 * MiB)
    out = tmp_path / "curl.out"
    killed_halfway(
        ["curl", "-sSfL", "--limit-rate", "2M", "-o", str(out), url], out, at_least=3 * MiB, cwd=tmp_path
    )
    partial = out.stat().st_size
    assert 0 < partial < image.size
    subprocess.run(["curl", "-sSfL", "-C", "-", "-o", str(out), url], check=True, timeout=120)
    assert out.stat().st_size == image.size and sha256_of(out) == image.sha256


def test_wget_continues_after_being_killed(storage, link_url, tmp_path):
    image, url = link_url(storage, size=24 * MiB)
    out = tmp_path / "wget.out"
    killed_halfway(
        ["wget", "-q", "--limit-rate=2m", "-O", str(out), url], out, at_least=3 * MiB, cwd=tmp_path
    )
    assert 0 < out.stat().st_size < image.size
    subprocess.run(["wget", "-q", "-c", "-O", str(out), url], check=True, timeout=120)
    assert sha256_of(out) == image.sha256


def test_aria2c_with_eight_connections(storage, link_url, tmp_path):
    image, url = link_url(storage, size=24 * MiB)
    subprocess.run(
        [
            "aria2c",
            "-q",
            "-x",
            "8",
            "-s",
            "8",
            "-k",
            "1M",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "-d",
            str(tmp_path),
            "-o",
            "aria.out",
            url,
        ],
        check=True,
        timeout=120,
    )
    assert sha256_of(tmp_path / "aria.out") == image.sha256


def curl_headers(*args) -> tuple[int, dict]:
    output = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-D", "-", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    blocks = [b for b in output.replace("\r\n", "\n").split("\n\n") if b.strip()]
    lines = blocks[-1].split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def test_head_matches_get_and_ranges_are_answered(standalone, link_url, tmp_path):
    image, url = link_url(standalone, size=8 * MiB, name="Ubuntu 22.04 (测试)")
    head_status, head = curl_headers("-I", url)
    get_status, got = curl_headers(url)
    assert head_status == get_status == 200
    for name in (
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "content-disposition",
        "content-type",
    ):
        assert head[name] == got[name], name
    assert head["etag"] == f'"{image.sha256}"' and head["content-length"] == str(image.size)
    assert "filename*=utf-8''Ubuntu%2022.04%20%28%E6%B5%8B%E8%AF%95%29.qcow2" in head["content-disposition"]
    # Several ranges: multipart/byteranges with each part's bytes.
    out = tmp_path / "multi"
    status, headers = curl_headers("-r", "0-99,1000-1099", url)
    subprocess.run(["curl", "-sS", "-r", "0-99,1000-1099", "-o", str(out), url], check=True)
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
    data = image.source_path.read_bytes()
    body = out.read_bytes()
    assert data[0:100] in body and data[1000:1100] in body
    assert f"Content-Range: bytes 1000-1099/{image.size}".encode() in body
    # Past the end: 416 with the size.
    status, headers = curl_headers("-r", f"{image.size + 10}-", url)
    assert status == 416 and headers["content-range"] == f"bytes */{image.size}"


def test_distributed_storage_redirects_to_a_presigned_url_that_expires_with_the_link(distributed, link_url):
    from django.test import Client

    image, url = link_url(distributed, size=2 * MiB)
    response = Client().get(urlsplit(url).path)
    assert response.status_code == 302
    target = response["Location"]
    assert target.startswith(distributed.endpoint_url) and "X-Amz-Expires=" in target
    expires = int(target.split("X-Amz-Expires=")[1].split("&")[0])
    assert 86000 <= expires <= 86400  # no later than the link's 24 hours


def test_distributed_storage_head_ranges_and_416_with_curl(distributed, link_url, tmp_path):
    """The object store answers whole files, single ranges and HEAD (after the redirect); several ranges
    and a range past the end are answered by the console itself, as on a standalone storage."""
    image, url = link_url(distributed, size=4 * MiB, fmt="raw")
    data = image.source_path.read_bytes()
    assert curl_headers("-I", url)[0] == curl_headers(url)[0] == 302
    head_status, head = curl_headers("-I", "-L", url)
    get_status, got = curl_headers("-L", url)
    assert head_status == get_status == 200 and head["content-length"] == str(image.size)
    for name in ("content-length", "etag", "last-modified", "accept-ranges"):
        assert head[name] == got[name], name
    out = tmp_path / "one"
    subprocess.run(["curl", "-sSL", "-r", "1000-1999", "-o", str(out), url], check=True)
    assert out.read_bytes() == data[1000:2000]
    status, headers = curl_headers("-L", "-r", "0-99,3000000-3000099", url)
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
    assert "location" not in headers
    subprocess.run(["curl", "-sSL", "-r", "0-99,3000000-3000099", "-o", str(out), url], check=True)
    body = out.read_bytes()
    assert data[:100] in body and data[3000000:3000100] in body
    assert f"Content-Range: bytes 3000000-3000099/{image.size}".encode() in body
    status, headers = curl_headers("-L", "-r", f"{image.size}-", url)
    assert status == 416 and headers["content-range"] == f"bytes */{image.size}"


def test_distributed_head_is_redirected_to_a_url_signed_for_head(distributed, link_url):
    """S3 signs the method with the URL: a GET URL answers a HEAD with 403 (moto does not check)."""
    from datetime import UTC, datetime
    from unittest import mock
    from urllib.parse import parse_qs

    from django.test import Client

    from storage.backends import get_backend

    image, url = link_url(distributed, size=1 * MiB)
    path = urlsplit(url).path
    frozen = datetime(2026, 11, 30, 6, 0, 0, tzinfo=UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=frozen):
        got = Client().get(path)["Location"]
        head = Client().head(path)["Location"]
        query = parse_qs(urlsplit(head).query)
        client = get_backend(distributed).client
        params = {
            "Bucket": distributed.bucket,
            "Key": urlsplit(head).path.split("/", 2)[2],
            "ResponseContentDisposition": query["response-content-disposition"][0],
        }
        expires = int(query["X-Amz-Expires"][0])
        signed_for = {
            method: client.generate_presigned_url(method, Params=params, ExpiresIn=expires)
            for method in ("get_object", "head_object")
        }
    assert got != head
    signature = query["X-Amz-Signature"][0]
    assert signature in signed_for["head_object"] and signature not in signed_for["get_object"]
