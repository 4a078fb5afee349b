"""The production topology of the README: Debian's nginx in front of two gunicorn instances (round robin,
no stickiness, client_max_body_size 64m, request buffering off for uploads), an RQ worker, one database,
Redis, staging and storage. nginx runs scripts/nginx/imageconsole.conf, the very file the README shows.

In Chromium, a user imports an image through nginx; the browser sends it in 32 MiB tus PATCHes
(IMPORT_UPLOAD_CHUNK_MB), which nginx spreads over both instances, and the image becomes available
without any byte being read again.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from imageconsole.localredis import start_private_redis
from tests.livesite import BASE_DIR, PASSWORD, PYTHON, USERNAME, LiveConsole, database_url, free_port

MiB = 1024 * 1024
SNIPPET = BASE_DIR / "scripts" / "nginx" / "imageconsole.conf"
# The 300 MiB by default; NGINX_TEST_MB makes it smaller on a slow machine.
SIZE = int(os.environ.get("NGINX_TEST_MB", "300")) * MiB


def nginx_binary() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(path):
        pytest.fail("nginx not found: install it (scripts/prerequisites.sh test)")
    return path


class Nginx:
    """nginx in the foreground, its files under `directory`, the README's snippet included as it is."""

    def __init__(self, directory: Path, upstreams: list[str], static_root: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = directory / "access.log"
        servers = "\n".join(f"        server {upstream};" for upstream in upstreams)
        temp = "\n".join(
            f"    {kind}_temp_path {directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (directory / "nginx.conf").write_text(
            f"""user root;
daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    log_format upstreams '$request_method $uri $status $upstream_addr';
    access_log {self.access_log} upstreams;
{temp}
    upstream imageconsole {{
{servers}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location /static/ {{ alias {static_root}/; }}
        include {SNIPPET};
    }}
}}
"""
        )
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(directory), "-c", str(directory / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "stderr.log", "wb"),  # noqa: SIM115 - nginx keeps it
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start:\n" + (directory / "stderr.log").read_text(errors="replace")
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def proxied(transactional_db, tmp_path, sqlite_template):
    """(nginx, console): nginx in front of the console's gunicorn and a second one."""
    redis, redis_url = start_private_redis(tmp_path / "redis", persist=False)
    console = nginx = None
    try:
        console = LiveConsole(
            tmp_path=tmp_path, db_url=database_url(tmp_path, sqlite_template), redis_url=redis_url, workers=1
        )
        second, _process = console.start_web()
        static_root = tmp_path / "static"
        subprocess.run(
            [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=BASE_DIR,
            env={**console.env, "STATIC_ROOT": str(static_root)},
            check=True,
        )
        nginx = Nginx(
            tmp_path / "nginx",
            [console.url.removeprefix("http://"), second.removeprefix("http://")],
            static_root,
        )
        yield nginx, console
    finally:
        if nginx is not None:
            nginx.stop()
        if console is not None:
            console.stop()
        redis.terminate()
        redis.wait(10)


def test_the_readme_shows_the_nginx_file_the_tests_run():
    readme = (BASE_DIR / "README.md").read_text()
    assert SNIPPET.read_text().strip() in readme


@pytest.fixture
def chromium(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


def test_a_browser_uploads_an_image_through_nginx_in_32_mib_patches(proxied, chromium, tmp_path):
    nginx, console = proxied
    raw = tmp_path / "big-disk.raw"
    with open(raw, "wb") as file:
        for index in range(SIZE // MiB):
            file.write(os.urandom(MiB) if index % 4 else bytes(MiB))
    sha256 = hashlib.sha256(raw.read_bytes()).hexdigest()

    context = chromium.new_context(base_url=nginx.url)
    page = context.new_page()
    page.set_default_timeout(30000)
    page.goto("/images/import/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Import image")).to_be_visible()
    page.get_by_label("Name").fill("behind nginx")
    page.get_by_label("Format").select_option("raw")
    page.get_by_label("System architecture").select_option("x86_64")
    page.get_by_label("Boot mode").select_option("bios")
    page.get_by_label("System platform").fill("CentOS")
    page.get_by_label("System version").fill("7.9")
    page.get_by_test_id("image-file").set_input_files(str(raw))
    page.get_by_test_id("import-submit").click()
    expect(page.get_by_test_id("upload-status")).to_contain_text("Upload complete", timeout=120000)
    page.wait_for_url(re.compile(r"/images/$"), timeout=60000)
    row = page.locator("tr", has_text="behind nginx")
    expect(row.get_by_test_id("image-status")).to_contain_text("Available", timeout=120000)
    context.close()

    # Every PATCH went through nginx, at most 32 MiB each, to both instances in turn.
    patches = [
        line.split() for line in nginx.access_log.read_text().splitlines() if line.startswith("PATCH ")
    ]
    assert len(patches) == -(-SIZE // (32 * MiB)), patches
    assert all(status == "204" for _method, _uri, status, _upstream in patches), patches
    assert len({upstream for *_rest, upstream in patches}) == 2, patches
    out = console.manage(
        "shell",
        "-c",
        "import json; from images.models import Image; i = Image.objects.get(name='behind nginx'); "
        "print(json.dumps({'status': i.status, 'sha256': i.sha256, 'size': i.size, "
        "'reread': i.upload.bytes_reread}))",
    )
    image = json.loads(out.strip().splitlines()[-1])
    assert image == {"status": "available", "sha256": sha256, "size": SIZE, "reread": 0}
