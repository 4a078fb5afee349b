"""End-to-end import speed: first byte sent to `available`, over tus and over PUT, for a qcow2 (stored as
it arrives, no conversion) and a VMDK (staged, converted to qcow2), beside `dd conv=fdatasync` of the
same bytes and bare `qemu-img convert` of the VMDK, all in one run.

    .venv/bin/python bench/import_upload.py [--size-mib 1024] [--dir /tmp] [--repeat 1] [--spread 4]

With `--spread N` the disk is sparse: the same data in 16 MiB stretches over a disk N times as large, as
in a real VM's disk (the VMDK, then, is one that qemu-img convert would store in a compact layout).

It starts everything a deployment runs, on this machine: a private redis-server, gunicorn (gthread)
serving the console, and an RQ worker, with a SQLite database, a standalone storage and a staging
area in a temporary directory. The client sends the file over HTTP from the page cache with sendfile (a tus
creation then one PATCH, as tus-js-client does by default; or one PUT) and polls the image until it is
available. Figures are MB/s of the file's size (10^6 bytes per second).

Goals: the qcow2 import at least 80% of dd's rate (issue 4); the VMDK import within 1.3x of its receiving
time plus bare qemu-img convert plus one MD5 pass of the converted file (issue 17). Other people's work on the machine (2 CPUs shared) shows
up as noise: compare figures of one run.
"""

import argparse
import base64
import ctypes
import http.client
import json
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MiB = 1024 * 1024
BLOCK = 4 * MiB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_random(path: Path, size: int, *, spread: int = 1) -> None:
    """`size` bytes of random data; with `spread` > 1, a disk `spread` times as large that holds them in
    16 MiB stretches, one at the start of every `16 * spread` MiB, and zeros (holes) between."""
    with open(path, "wb") as file:
        file.truncate(size * spread)
        remaining = size
        while remaining:
            block = min(remaining, 16 * MiB)
            file.write(os.urandom(block))
            remaining -= block
            if spread > 1:
                file.seek((spread - 1) * 16 * MiB, os.SEEK_CUR)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value
_resident: dict[str, tuple[tuple[int, int], int, int]] = {}  # path: ((inode, size), address, length)


def warm(path: Path) -> None:
    """Read the file into the page cache and keep it there (mlock of a shared read-only mapping) until
    `forget(path)`: this machine's memory management takes cached pages back within seconds, even with most
    memory free, and every page read again from disk slowed whichever reader met it (a tool or the
    console's client) by a different amount. Without the right to lock, the file is only read."""
    key = str(Path(path).resolve())
    stat = os.stat(key)
    held = _resident.get(key)
    if held is not None and held[0] == (stat.st_ino, stat.st_size):
        return
    forget(key)
    if stat.st_size:
        fd = os.open(key, os.O_RDONLY)
        try:
            address = _libc.mmap(None, stat.st_size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        finally:
            os.close(fd)
        if address not in (None, _MAP_FAILED):
            if _libc.mlock(address, stat.st_size) == 0:
                _resident[key] = ((stat.st_ino, stat.st_size), address, stat.st_size)
                return
            _libc.munmap(address, stat.st_size)
    with open(key, "rb") as file:
        while file.read(16 * MiB):
            pass


def forget(path) -> None:
    """Let the page cache drop the file again (see `warm`)."""
    held = _resident.pop(str(Path(path).resolve()), None)
    if held is not None:
        _libc.munmap(held[1], held[2])  # unmapping unlocks


def quiet_disk(path, *, still: float = 0.3, limit: float = 10.0) -> float:
    """Wait until the block device under `path` has no I/O in flight and its counters
    (/sys/dev/block/M:m/stat) stood still for `still` seconds, at most `limit` seconds; return the wait.
    After a deletion a sync is not the end of it: on a filesystem mounted with `discard` (this machine's
    ext4) the freed blocks are trimmed once the journal commits, and the fsyncs of whatever came next
    waited behind that (a URL import's first 0.17 s were idle CPUs in iowait after the bench deleted the
    previous import's GiB of chunks). A tmpfs has no device: no wait."""
    device = os.stat(path).st_dev
    stat = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat")
    if os.major(device) == 0 or not stat.exists():
        return 0.0
    start = time.monotonic()
    before, since = None, start
    while time.monotonic() - start < limit:
        now = stat.read_text().split()
        if now != before or int(now[8]):  # (the ninth field: I/Os in flight)
            before, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            break
        time.sleep(0.02)
    return time.monotonic() - start


def timed_command(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


class Deployment:
    """redis-server, gunicorn and an RQ worker over a temporary VAR_DIR; stopped on exit."""

    def __init__(self, root: Path, *, upload_concurrency: int = 4):
        """`upload_concurrency`: the storage's chunk-writing threads (a new storage has 1)."""
        self.root = root
        self.upload_concurrency = upload_concurrency
        self.children: list[subprocess.Popen] = []
        self.port = free_port()
        var = root / "var"
        var.mkdir()
        socket_path = root / "redis.sock"
        self.env = {
            **os.environ,
            "VAR_DIR": str(var),
            # BENCH_DATABASE_URL: an empty database to use instead (PostgreSQL, as in production).
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{var / 'db.sqlite3'}",
            "DATABASE_CONN_MAX_AGE": "60",  # as the README's Production section recommends
            "STAGING_ROOT": str(root / "staging"),
            "STORAGE_ROOT": str(root / "storage"),
            "REDIS_URL": f"unix://{socket_path}?db=0",
            "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "DEBUG": "0",
            "SECURE_COOKIES": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "INFO",
            "DJANGO_SETTINGS_MODULE": "imageconsole.settings",
        }
        self.start(
            [
                "redis-server",
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            log="redis.log",
        )
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        manage = [PYTHON, str(BASE / "manage.py")]
        subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], env=self.env, check=True, cwd=BASE)
        self.token, self.storage_id = self.set_up(manage)
        self.start(
            [
                str(Path(PYTHON).parent / "gunicorn"),
                "imageconsole.wsgi:application",
                "-b",
                f"127.0.0.1:{self.port}",
                "-k",
                "gthread",
                "--threads",
                "4",
                "-w",
                "1",
                "--timeout",
                "3600",
            ],
            log="gunicorn.log",
        )
        self.start([*manage, "rqworker", "imports", "convert", "default", "maintenance"], log="worker.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start; see gunicorn.log") from None
                time.sleep(0.2)

    def forget_chunks(self) -> None:
        """Remove every chunk the storage holds, so that the next import of the same file stores all of
        its chunks again. A store keeps one copy of a chunk and does not write one it already has
        (deduplication): a bench importing one file over and over would otherwise time imports that
        write nothing after the first. The images already imported lose their data (a bench's)."""
        for chunks in (self.root / "storage").rglob("chunks"):
            for chunk in chunks.glob("*/*"):
                chunk.unlink(missing_ok=True)
        os.sync()
        quiet_disk(self.root)  # the trim of what was deleted, before the next import's first fsync

    def start(self, command: list[str], *, log: str) -> None:
        output = open(self.root / log, "wb")  # noqa: SIM115 - closed with the process
        self.children.append(
            subprocess.Popen(command, env=self.env, cwd=BASE, stdout=output, stderr=subprocess.STDOUT)
        )

    def set_up(self, manage) -> tuple[str, int]:
        script = (
            "from tenants import services as t\n"
            "from tenants.models import Membership\n"
            "from storage.services import storage_create_default\n"
            "tenant = t.tenant_create(name='bench')\n"
            "user = t.user_create(username='bench', password='bench-password-1234')\n"
            "t.membership_add(tenant=tenant, user=user, role=Membership.Role.OWNER)\n"
            "storage = storage_create_default()\n"
            "storage.reserved_bytes = 0\n"
            f"storage.upload_concurrency = {self.upload_concurrency}\n"
            "storage.save()\n"
            "print(t.api_token_create(user=user)[1], storage.pk)\n"
        )
        done = subprocess.run(
            [*manage, "shell", "-c", script], env=self.env, cwd=BASE, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"setting up the tenant and storage failed:\n{done.stderr}")
        out = done.stdout.split()
        return out[-2], int(out[-1])

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    # HTTP -------------------------------------------------------------------------------------

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=3600, blocksize=BLOCK)

    def request(self, method, path, body=None, headers=None) -> tuple[int, dict, bytes]:
        connection = self.connection()
        try:
            connection.request(
                method, path, body=body, headers={"Authorization": f"Token {self.token}", **(headers or {})}
            )
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def create(self, name: str, fmt: str) -> str:
        body = json.dumps(
            {
                "name": name,
                "disk_format": fmt,
                "os_type": "other",
                "storage": self.storage_id,
                "source": "upload",
            }
        )
        status, _h, data = self.request("POST", "/api/v1/images/", body, {"Content-Type": "application/json"})
        if status != 201:
            raise RuntimeError(f"create: {status} {data[:500]!r}")
        return json.loads(data)["id"]

    def send(self, method: str, path: str, file: Path, headers: dict) -> tuple[int, bytes]:
        """The file as the request's body, sent with sendfile(2): the kernel copies it from the page cache
        to the socket, and the client costs the two CPUs it shares with the console as little as it can
        (a browser or `curl -T` on another machine costs them nothing; http.client's reads and sends in
        Python took 0.5 s of CPU per GiB from the server)."""
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        fields = {
            "Authorization": f"Token {self.token}",
            "Content-Length": str(file.stat().st_size),
            **headers,
        }
        head += [f"{name}: {value}" for name, value in fields.items()]
        with socket.create_connection(("127.0.0.1", self.port), timeout=3600) as connection:
            connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            with open(file, "rb") as body:
                connection.sendfile(body)
            response = http.client.HTTPResponse(connection, method=method)
            response.begin()
            return response.status, response.read()

    def put(self, image_id: str, file: Path) -> None:
        status, data = self.send(
            "PUT", f"/api/v1/images/{image_id}/file", file, {"Content-Type": "application/octet-stream"}
        )
        if status != 202:
            raise RuntimeError(f"PUT: {status} {data[:500]!r}")

    def tus(self, image_id: str, file: Path) -> None:
        metadata = f"image_id {base64.b64encode(image_id.encode()).decode()}"
        status, headers, data = self.request(
            "POST",
            "/api/v1/uploads/",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(file.stat().st_size),
                "Upload-Metadata": metadata,
            },
        )
        if status != 201:
            raise RuntimeError(f"tus creation: {status} {data[:500]!r}")
        path = "/" + headers["Location"].split("/", 3)[3]
        status, data = self.send(
            "PATCH",
            path,
            file,
            {
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        if status != 204:
            raise RuntimeError(f"tus PATCH: {status} {data[:500]!r}")

    @staticmethod
    def _log_says(log: Path, seen: list, marker: bytes) -> bool:
        """Whether what `log` gained since `seen` ([offset, tail]) holds `marker`."""
        with suppress(FileNotFoundError), open(log, "rb") as file:
            file.seek(seen[0])
            data = file.read()
            seen[0] += len(data)
            if marker in seen[1] + data:
                return True
            seen[1] = data[-len(marker) :] if data else seen[1]
        return False

    def image(self, image_id: str) -> dict:
        _status, _h, data = self.request("GET", f"/api/v1/images/{image_id}/")
        image = json.loads(data)
        if image["status"] == "failed":
            raise RuntimeError(f"import failed: {image['error']}")
        return image

    def wait_available(self, image_id: str, *, answered: float | None = None) -> float:
        """Until the image is available; returns the perf_counter() when that was seen, or `answered`
        (when a request that may have finished the image answered) if the line is in the log at the
        first look: the image was available before that answer.

        The line the pipeline logs once the image is available (from the worker, or from the web
        process for an upload finished in its last request) is watched for every 5 ms, and the API is
        asked only every 2 s until it appears (for a failed import): a GET costs the web process 5-20 ms
        of CPU, which polling would take from an import running on the same two cores, and would add
        its own time to what is measured. Once the line is seen, a GET (not timed) confirms the status."""
        logs = {self.root / "worker.log": [0, b""], self.root / "gunicorn.log": [0, b""]}
        marker = f"images.pipeline: import {image_id} available".encode()
        asked = 0.0
        first = True
        while True:
            if any(self._log_says(log, seen, marker) for log, seen in logs.items()):
                seen_at = answered if first and answered is not None else time.perf_counter()
                break
            first = False
            if time.monotonic() - asked > 2:
                asked = time.monotonic()
                if self.image(image_id)["status"] == "available":
                    return time.perf_counter()
            time.sleep(0.005)
        status = self.image(image_id)["status"]
        if status != "available":
            raise RuntimeError(f"the log says {image_id} is available, the API says {status}")
        return seen_at


def import_once(
    deployment: Deployment, file: Path, fmt: str, protocol: str, label: str
) -> tuple[float, float]:
    image_id = deployment.create(label, fmt)
    deployment.forget_chunks()
    warm(file)
    start = time.perf_counter()
    (deployment.tus if protocol == "tus" else deployment.put)(image_id, file)
    answered = time.perf_counter()
    # An image its last request finished was available before the answer (the client knows it then);
    # one a job converts, when the job's line appears.
    available = deployment.wait_available(image_id, answered=answered)
    return answered - start, available - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where files, storage and staging go")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--spread",
        type=int,
        default=1,
        help="a sparse disk: the data in 16 MiB stretches over a disk this many times its size",
    )
    arguments = parser.parse_args()
    size = arguments.size_mib * MiB
    root = Path(tempfile.mkdtemp(prefix="import-bench-", dir=arguments.dir))
    files = root / "files"
    files.mkdir()
    deployment = None
    try:
        raw = files / "random.raw"
        write_random(raw, size, spread=arguments.spread)
        qcow2 = files / "random.qcow2"
        vmdk = files / "random.vmdk"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", str(raw), str(vmdk)], check=True)
        raw.unlink()
        deployment = Deployment(root)
        mb = lambda nbytes, seconds: nbytes / seconds / 1e6  # noqa: E731

        rows = []
        for _ in range(arguments.repeat):
            warm(qcow2)
            dd_out = root / "storage" / "dd.out"
            dd = timed_command(
                ["dd", f"if={qcow2}", f"of={dd_out}", "bs=4M", "conv=fdatasync", "status=none"]
            )
            dd_out.unlink()
            warm(vmdk)
            converted = root / "staging" / "bare.qcow2"
            converted.parent.mkdir(exist_ok=True)
            bare = timed_command(
                ["qemu-img", "convert", "-f", "vmdk", "-O", "qcow2", str(vmdk), str(converted)]
            )
            warm(converted)
            md5 = timed_command(["md5sum", str(converted)])
            forget(converted)
            converted.unlink()
            results = {}
            for fmt, file in (("qcow2", qcow2), ("vmdk", vmdk)):
                for protocol in ("tus", "put"):
                    results[fmt, protocol] = import_once(
                        deployment, file, fmt, protocol, f"{fmt}-{protocol}-{len(rows)}"
                    )
            rows.append((dd, bare, md5, results))

        qsize, vsize = qcow2.stat().st_size, vmdk.stat().st_size
        spread = f" over a {arguments.size_mib * arguments.spread} MiB disk" if arguments.spread > 1 else ""
        print(
            f"import_upload: {arguments.size_mib} MiB of random data{spread}; qcow2 file {qsize / 1e6:.0f} MB, vmdk file {vsize / 1e6:.0f} MB"
        )
        print(f"machine: {os.cpu_count()} CPUs (shared with other work: figures are noisy)")
        for dd, bare, md5, results in rows:
            print(f"  dd conv=fdatasync (qcow2 bytes)          {mb(qsize, dd):8.0f} MB/s  {dd:6.2f} s")
            print(f"  bare qemu-img convert vmdk -> qcow2      {mb(vsize, bare):8.0f} MB/s  {bare:6.2f} s")
            print(f"  md5sum of the converted qcow2                           {md5:6.2f} s")
            for protocol in ("tus", "put"):
                received, total = results["qcow2", protocol]
                print(
                    f"  qcow2 over {protocol:3s}: first byte to available {mb(qsize, total):8.0f} MB/s  {total:6.2f} s"
                    f"  (received {received:.2f} s)  = {mb(qsize, total) / mb(qsize, dd) * 100:.0f}% of dd (goal >= 80%)"
                )
            for protocol in ("tus", "put"):
                received, total = results["vmdk", protocol]
                budget = received + bare + md5
                print(
                    f"  vmdk  over {protocol:3s}: first byte to available {mb(vsize, total):8.0f} MB/s  {total:6.2f} s"
                    f"  (received {received:.2f} s + bare convert {bare:.2f} s + md5 {md5:.2f} s = {budget:.2f} s;"
                    f" ratio {total / budget:.2f}, goal <= 1.30)"
                )
        steps = [
            line.split("images.pipeline: ", 1)[1]
            for line in (root / "worker.log").read_text().splitlines()
            if "images.pipeline: import" in line
        ]
        if steps:
            print("  worker's steps after the last byte:")
            for line in steps:
                print(f"    {line}")
    finally:
        if deployment is not None:
            deployment.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
