"""End-to-end URL import speed: the API call to `available`, for a 1 GiB qcow2 of random data served over
HTTP from loopback, beside `curl -o` of the same URL, in one run.

    .venv/bin/python bench/import_url.py [--size-mib 1024] [--dir /tmp] [--repeat 1]

It starts what a deployment runs (a private redis-server, gunicorn, an RQ worker; SQLite, a standalone
storage and staging in a temporary directory: see bench/import_upload.py) with 127.0.0.1 allowed by
IMPORT_ALLOWED_NETWORKS, and an HTTP server in this process that answers with sendfile(2) from the page
cache (Range supported). The worker fetches the file (images.fetch), stores it as it arrives with MD5
and SHA256 in the same pass (chunks fsynced), inspects it, and the image becomes available.
Figures are MB/s of the file's size (10^6 bytes per second).

Goal (issue 6): at least 70% of curl's rate. The 2 CPUs are shared with other people's work: compare
the figures of one run.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_upload import Deployment, MiB, timed_command, warm, write_random  # noqa: E402

_RANGE = re.compile(r"^bytes=(\d+)-$")


class SendfileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(time.perf_counter())
        path = self.server.file
        size = path.stat().st_size
        start = 0
        match = _RANGE.match(self.headers.get("Range", ""))
        if match and int(match.group(1)) < size:
            start = int(match.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.flush()
        with open(path, "rb") as file:
            try:
                self.connection.sendfile(file, start, size - start)
            except OSError:
                self.close_connection = True


def serve(file: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SendfileHandler)
    server.daemon_threads = True
    server.file = file
    server.requests = []  # when each GET came (perf_counter): a URL import's first byte follows its first
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def import_once(deployment: Deployment, url: str, label: str, server) -> tuple[float, float]:
    """One URL import of `url` (served by `server`, see `serve`): seconds from the API call to
    `available`, and from the source's first byte to `available`. The second is the issue's "first byte
    to available", as an upload's is timed from its first byte sent (the image already created): it
    leaves out the API call and the job's start, which the first includes."""
    body = json.dumps(
        {
            "name": label,
            "disk_format": "qcow2",
            "os_type": "other",
            "storage": deployment.storage_id,
            "source": "url",
            "url": url,
        }
    )
    deployment.forget_chunks()  # (the same file again: see Deployment.forget_chunks)
    server.requests.clear()
    start = time.perf_counter()
    status, _h, data = deployment.request(
        "POST", "/api/v1/images/", body, {"Content-Type": "application/json"}
    )
    if status != 201:
        raise RuntimeError(f"create: {status} {data[:500]!r}")
    end = deployment.wait_available(json.loads(data)["id"])
    return end - start, end - min(server.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where files, storage and staging go")
    parser.add_argument("--repeat", type=int, default=1)
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="import-url-bench-", dir=arguments.dir))
    files = root / "files"
    files.mkdir()
    deployment = server = None
    try:
        raw = files / "random.raw"
        write_random(raw, arguments.size_mib * MiB)
        qcow2 = files / "random.qcow2"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
        raw.unlink()
        size = qcow2.stat().st_size
        os.environ.update(IMPORT_ALLOWED_NETWORKS="127.0.0.1/32", IMPORT_ALLOWED_PORTS="*")
        deployment = Deployment(root)
        server = serve(qcow2)
        url = f"http://127.0.0.1:{server.server_address[1]}/random.qcow2"
        mb = lambda seconds: size / seconds / 1e6  # noqa: E731

        print(f"import_url: {arguments.size_mib} MiB of random data as qcow2, file {size / 1e6:.0f} MB")
        print(
            f"machine: {os.cpu_count()} CPUs shared with other work (figures are noisy), {socket.gethostname()}"
        )
        for run in range(arguments.repeat):
            warm(qcow2)
            target = root / "curl.out"
            curl = timed_command(["curl", "-sS", "--fail", "-o", str(target), url])
            target.unlink()
            warm(qcow2)
            total, from_first_byte = import_once(deployment, url, f"url-{run}", server)
            print(f"  curl -o                               {mb(curl):8.0f} MB/s  {curl:6.2f} s")
            print(
                f"  URL import, API call to available     {mb(total):8.0f} MB/s  {total:6.2f} s"
                f"  = {mb(total) / mb(curl) * 100:.0f}% of curl (goal >= 70%)"
            )
            print(
                f"  URL import, first byte to available   {mb(from_first_byte):8.0f} MB/s  {from_first_byte:6.2f} s"
            )
    finally:
        if server is not None:
            server.shutdown()
        if deployment is not None:
            deployment.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
