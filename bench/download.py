"""Download speed through a link, side by side with nginx and `cat`, in one run.

    .venv/bin/python bench/download.py [--size-mib 1024] [--dir /tmp] [--concurrency 4]

Sets up, in a temporary directory: a SQLite database, a standalone storage holding a 1 GiB image (random
bytes, stored as 4 MiB chunks), a raw export of it (one complete file in the storage's exports/ area),
a link to each, gunicorn (gthread, as in production) serving the console, and nginx (from a temporary
configuration, on a loopback port, `sendfile on`) serving the export file itself. Then curl fetches:

- the chunk-stored image through its link, whole and from the middle (`-r <half>-`);
- the export file through its link, whole and from the middle (FileResponse: gunicorn's sendfile);
- the same export file from nginx, whole and from the middle;
- and `cat file > /dev/null` reads it, for the page cache's rate.

Figures are MB/s (10^6 bytes per second), the median of `--repeat` transfers (rounds interleave the
sources), and the gunicorn worker's largest resident memory during them (beside its memory between
downloads). Goals (issue 12): the export file at least nginx's rate, the chunk-stored image at least 70%
of it, memory flat. The machine is shared: compare figures of one run.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def rss_of_tree(pid: int) -> int:
    """Resident bytes of a process and its children (gunicorn's master and worker)."""
    return sum(rss_of_each(pid))


def rss_of_each(pid: int) -> list[int]:
    """Resident bytes of a process and of each of its children, one figure per process (a forked child
    counts the pages it shares with its parent again)."""
    sizes = []
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                pids += [int(child) for child in file.read().split()]
    except OSError:
        pass
    for each in pids:
        try:
            with open(f"/proc/{each}/status") as file:
                for line in file:
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) * 1024)
        except OSError:
            pass
    return sizes


class PeakMemory:
    """The peak resident memory of a process tree, sampled every `interval` seconds on a thread (each
    sample reads /proc for every thread and child: often enough, it takes CPU from what it watches)."""

    def __init__(self, pid: int | None, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak = 0  # the whole tree's
        self.each = 0  # the largest single process's
        self._stop = threading.Event()

    def __enter__(self):
        if self.pid:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            sizes = rss_of_each(self.pid)
            self.peak = max(self.peak, sum(sizes))
            self.each = max([self.each, *sizes])
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        if self.pid:
            self._thread.join()


def curl(url: str, *, start: int | None = None) -> tuple[int, float]:
    command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url]
    if start is not None:
        command[1:1] = ["-r", f"{start}-"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    return int(output[0]), float(output[1])


def set_up(root: Path, size: int, concurrency: int, env: dict) -> tuple[str, str, Path]:
    """Store the image, export it as raw, and make a link to each; returns the two link paths and the
    export file's path."""
    script = f"""
import os
from images.downloads import services
from images.models import ExportedImage, Image, ImageReplica
from storage.backends import get_backend
from storage.models import ImageStorage
from tenants import services as t
from tenants.models import Membership

tenant = t.tenant_create(name="bench")
user = t.user_create(username="bench", password="bench-password-1234")
t.membership_add(tenant=tenant, user=user, role=Membership.Role.OWNER)
storage = ImageStorage.objects.create(name="bench", kind=ImageStorage.Kind.STANDALONE,
    mount_path={str(root / "storage")!r}, reserved_bytes=0, upload_concurrency={concurrency},
    download_concurrency={concurrency})
backend = get_backend(storage)
image = Image.objects.create(tenant=tenant, name="bench-image", disk_format="raw", status="available",
    stage="", storage=storage)
result = backend.ingest({str(root / "image.raw")!r}, key=str(image.pk))
Image.objects.filter(pk=image.pk).update(size=result.size, md5=result.md5, sha256=result.sha256)
image.refresh_from_db()
ImageReplica.objects.create(image=image, storage=storage, key=str(image.pk), state="ready", size=result.size)
export = services.export_create(image=image, fmt="raw", actor=user)
services.export_run(export_id=export.pk)
export.refresh_from_db()
assert export.status == "ready", export.error
link, token = services.link_create(image=image, actor=user)
export_link, export_token = services.link_create(image=image, actor=user, export=export)
print(services.link_path(link, token), services.link_path(export_link, export_token),
      backend.export_path(export.key))
"""
    out = subprocess.run(
        [PYTHON, str(BASE / "manage.py"), "shell", "-c", script],
        env=env,
        cwd=BASE,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[-3], out[-2], Path(out[-1])


NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {root}/nginx-tmp;
    proxy_temp_path {root}/nginx-tmp;
    fastcgi_temp_path {root}/nginx-tmp;
    uwsgi_temp_path {root}/nginx-tmp;
    scgi_temp_path {root}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {docroot}; }}
    }}
}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--concurrency", type=int, default=4, help="the storage's download concurrency")
    parser.add_argument("--repeat", type=int, default=3, help="transfers per figure; the median is shown")
    args = parser.parse_args()
    for tool in ("curl", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is needed (apt-get install curl nginx)")
    size = args.size_mib * MiB
    root = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.dir))
    children: list[subprocess.Popen] = []
    try:
        var = root / "var"
        var.mkdir()
        (root / "nginx-tmp").mkdir()
        env = {
            **os.environ,
            "VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
            "STAGING_ROOT": str(root / "staging"),
            "STORAGE_ROOT": str(root / "storage"),
            "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "DEBUG": "0",
            "SECURE_COOKIES": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "imageconsole.settings",
        }
        print(f"writing a {args.size_mib} MiB image of random bytes under {root} ...", flush=True)
        with open(root / "image.raw", "wb") as file:
            for _ in range(size // (16 * MiB)):
                file.write(os.urandom(16 * MiB))
        subprocess.run(
            [PYTHON, str(BASE / "manage.py"), "migrate", "--no-input", "-v", "0"],
            env=env,
            check=True,
            cwd=BASE,
        )
        image_path, export_path, export_file = set_up(root, size, args.concurrency, env)
        (root / "image.raw").unlink()

        port = free_port()
        gunicorn = subprocess.Popen(
            [
                str(Path(PYTHON).parent / "gunicorn"),
                "imageconsole.wsgi:application",
                "-b",
                f"127.0.0.1:{port}",
                "-k",
                "gthread",
                "--threads",
                "4",
                "-w",
                "1",
                "--timeout",
                "3600",
            ],
            env=env,
            cwd=BASE,
            stdout=open(root / "gunicorn.log", "wb"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        children.append(gunicorn)
        nginx_port = free_port()
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, port=nginx_port, docroot=export_file.parent))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        children.append(
            subprocess.Popen([nginx, "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL)
        )
        wait_for_port(port, "gunicorn")
        wait_for_port(nginx_port, "nginx")
        console = f"http://127.0.0.1:{port}"
        nginx_url = f"http://127.0.0.1:{nginx_port}/{export_file.name}"

        # Warm the page cache, as a file being downloaded repeatedly is.
        subprocess.run(["cat", str(export_file)], stdout=subprocess.DEVNULL, check=True)
        start = time.perf_counter()
        subprocess.run(["cat", str(export_file)], stdout=subprocess.DEVNULL, check=True)
        cat_rate = size / (time.perf_counter() - start) / 1e6
        curl(console + image_path)  # warm the chunks
        idle_rss = rss_of_tree(gunicorn.pid)

        sources = [
            (label, part, url, offset, pid)
            for label, url, pid in (
                ("chunk-stored image, link", console + image_path, gunicorn.pid),
                ("export file, link (sendfile)", console + export_path, gunicorn.pid),
                ("export file, nginx (sendfile)", nginx_url, None),
            )
            for part, offset in (("whole", None), ("from the middle", size // 2))
        ]
        rates = {index: [] for index in range(len(sources))}
        peaks = dict.fromkeys(range(len(sources)), 0)
        # Rounds interleave the sources, so that a neighbour's load on the shared machine falls on all.
        for _round in range(args.repeat):
            for index, (label, _part, url, offset, pid) in enumerate(sources):
                with PeakMemory(pid) as memory:
                    received, seconds = curl(url, start=offset)
                expected = size - (offset or 0)
                assert received == expected, f"{label}: {received} bytes, expected {expected}"
                rates[index].append(received / seconds / 1e6)
                peaks[index] = max(peaks[index], memory.peak)
        rows = [
            (label, part, statistics.median(rates[index]), peaks[index])
            for index, (label, part, _url, _offset, _pid) in enumerate(sources)
        ]
        print()
        print(f"{'what':34} {'part':16} {'MB/s':>8} {'gunicorn RSS MiB':>17}")
        for label, part, rate, peak in rows:
            print(f"{label:34} {part:16} {rate:8.0f} {(f'{peak / MiB:.0f}' if peak else '-'):>17}")
        print(f"{'cat file > /dev/null':34} {'whole':16} {cat_rate:8.0f} {'-':>17}")
        print(f"gunicorn (master and worker) resident memory between downloads: {idle_rss / MiB:.0f} MiB")
        nginx_whole = rows[4][2]
        print()
        print(f"export file through a link: {rows[2][2] / nginx_whole:.0%} of nginx (goal: at least 100%)")
        print(
            f"chunk-stored image through a link: {rows[0][2] / nginx_whole:.0%} of nginx (goal: at least 70%)"
        )
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
