"""Imports against the limits of the machine, in one run: `md5sum`, `sha256sum`, `cat > /dev/null` and
`dd conv=fdatasync` of one file, then the console's PUT upload, tus upload, URL import and download of the
same file, each as MB/s and as a fraction of the hash bound; Glance's upload and web-download beside them
when the Glance peer answers on 127.0.0.1:9292 (../shared/peers/glance/setup.sh).

    .venv/bin/python bench/limits.py [--size-mib 1024] [--rounds 3] [--dir /tmp] [--glance] [--memory-gib 10]

The hash bound is what any conforming import must do with the bytes: MD5 of the file cannot be split, so
it takes one core; SHA256 of the file, BLAKE3 of each chunk (the store's chunk names) and reading the
request share the other. The bound is the slower of the two:
    bound = min(md5, 1 / (1 / sha256 + 1 / blake3 + 1 / read))
each step at the faster of the tool and hashlib (OpenSSL) / a Python read into one buffer.
Every import also writes every byte to the store's disk: "the store's writes" times that alone (4 MiB
chunk files, O_DIRECT, fsync each, four at a time, as storage/backends/standalone.py writes them). Where
the disk takes them slower than the hash bound, the run says so, and each import's fraction of that rate
is printed too: the disk, not the hashing, is the limit there.
Rounds interleave the steps so that drift (other work on the shared cores) hits all of them alike;
medians are printed. Every import stores all of its chunks: the storage's chunks are removed before
each (Deployment.forget_chunks; a store does not write a chunk it has, so the same file imported again
would write nothing). One untimed PUT and URL import come first (a process's first import maps its
buffers), and every step starts after `sync` with the file resident (Glance's store and dd leave a GiB
for the kernel to write back) and the disk quiet (a deletion's trim, on a filesystem mounted with
`discard`, delayed the next step's first fsyncs). Where the disk syncs slower than MD5 (`dd
conv=fdatasync` below `md5sum`) or its speed varies, give --dir a tmpfs mount to take it out of the
figures.
Goal (issue 17): uploads and URL import first byte to `available` >= 90% of md5sum, and >= 3.5x Glance.
Every import hashes all of its bytes with MD5, which cannot be split, so beside each ratio to Glance the
run prints the ratio an import running at the MD5 rate itself would make: where Glance runs faster than
a 3.5th of MD5, no import can reach 3.5x. An upload is timed
from its first byte sent (the image created before), a URL import from the first byte its source sends
(the source's first GET) and, beside it, from the API call that asked for it (with the job's start);
the latter is set against Glance's web-download, timed from its API calls too.
Peak RSS of the web and worker processes during the run is printed too (the largest single process,
and each process tree), and with --memory-gib that of one PUT of a file that large (goal: under 200 MB).
"""

import argparse
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from download import PeakMemory  # noqa: E402
from import_upload import Deployment, import_once, quiet_disk, timed_command, warm, write_random  # noqa: E402
from import_url import import_once as url_import_once  # noqa: E402
from import_url import serve  # noqa: E402

MiB = 1024 * 1024
GLANCE_PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "glance" / "side_by_side.py"


def glance_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 9292), timeout=1):
            return True
    except OSError:
        return False


def load_glance():
    spec = importlib.util.spec_from_file_location("side_by_side", GLANCE_PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    request = module.glance

    def glance(method, path, *args, **kwargs):
        # Deleting the image just timed sometimes meets "database is locked" (500) in Glance's SQLite
        # while its import task lets go: asked again a second later. The timing has ended by then.
        for attempt in range(20):
            try:
                return request(method, path, *args, **kwargs)
            except urllib.error.HTTPError as error:
                if method == "DELETE" and attempt and error.code in (400, 404):
                    return None  # the locked try had deleted it after all
                if method != "DELETE" or error.code != 500 or attempt == 19:
                    raise
                time.sleep(1)

    module.glance = glance
    return module


def hash_rate(path: Path, name: str) -> float:
    """Seconds to hash the file from the page cache: hashlib (OpenSSL, what the console uses for MD5 and
    SHA256) or, for "blake3", BLAKE3 on one thread (what names a chunk, storage/backends/chunknames.py)."""
    import hashlib

    import blake3

    hasher = blake3.blake3() if name == "blake3" else hashlib.new(name)
    buffer = bytearray(4 * MiB)
    view = memoryview(buffer)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            hasher.update(view[:count])
    return time.perf_counter() - start


def read_rate(path: Path) -> float:
    """Seconds to read the file from the page cache into one buffer (reading a request costs at least this)."""
    buffer = bytearray(4 * MiB)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as file:
        while file.readinto(buffer):
            pass
    return time.perf_counter() - start


def store_write_rate(path: Path, directory: Path, *, concurrency: int = 4) -> float:
    """Seconds to write the file's bytes the way the standalone store writes an import's chunks
    (storage/backends/standalone.py): 4 MiB page-aligned buffers, a file each, O_DIRECT where the file
    system takes it, fsync each, `concurrency` at a time (the deployment's upload concurrency). Every
    import writes every byte so: where the disk is slower than MD5 it, not the hashing, is the limit."""
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    directory.mkdir(exist_ok=True)
    size = path.stat().st_size
    chunk = 4 * MiB
    direct = getattr(os, "O_DIRECT", 0)

    local = threading.local()

    def write(index: int) -> None:
        buffer = getattr(local, "buffer", None)  # a writer's buffers are reused, as the store's are
        if buffer is None:
            buffer = local.buffer = mmap.mmap(-1, chunk)
        with open(path, "rb", buffering=0) as source:
            source.seek(index * chunk)
            count = source.readinto(buffer)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        aligned = count % 4096 == 0
        try:
            fd = os.open(directory / f"{index}.chunk", flags | (direct if aligned else 0), 0o644)
        except OSError:  # no O_DIRECT here (tmpfs)
            fd = os.open(directory / f"{index}.chunk", flags, 0o644)
        try:
            os.ftruncate(fd, count)
            os.pwrite(fd, memoryview(buffer)[:count], 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(write, range((size + chunk - 1) // chunk)))
    seconds = time.perf_counter() - start
    shutil.rmtree(directory)
    return seconds


def download_once(deployment: Deployment, image_id: str) -> float:
    status, _h, data = deployment.request(
        "POST",
        f"/api/v1/images/{image_id}/download-links",
        "{}",
        {"Content-Type": "application/json"},
    )
    if status != 201:
        raise RuntimeError(f"download link: {status} {data[:300]!r}")
    url = json.loads(data)["url"]
    if url.startswith("/"):
        url = f"http://127.0.0.1:{deployment.port}{url}"
    return timed_command(["curl", "-sS", "--fail", "-o", "/dev/null", url])


def latest_image(deployment: Deployment) -> str:
    status, _h, data = deployment.request("GET", "/api/v1/images/?ordering=-created&page_size=1")
    if status != 200:
        raise RuntimeError(f"list: {status}")
    return json.loads(data)["results"][0]["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where files, storage and staging go")
    parser.add_argument("--glance", action="store_true", help="time Glance too (its peer must be running)")
    parser.add_argument(
        "--upload-concurrency",
        type=int,
        default=4,
        help="the storage's chunk-writing threads (default 4, as every run in the README; a new storage has 1)",
    )
    parser.add_argument(
        "--memory-gib", type=int, default=0, help="then one PUT of a file this large, for the peak memory"
    )
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="limits-bench-", dir=arguments.dir))
    files = root / "files"
    files.mkdir()
    deployment = server = None
    glance = None
    if arguments.glance:
        if not glance_answers():
            sys.exit(
                "--glance: nothing answers on 127.0.0.1:9292; start ../shared/peers/glance/setup.sh first"
            )
        glance = load_glance()
    try:
        raw = files / "random.raw"
        write_random(raw, arguments.size_mib * MiB)
        qcow2 = files / "random.qcow2"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
        raw.unlink()
        size = qcow2.stat().st_size
        os.environ.update(IMPORT_ALLOWED_NETWORKS="127.0.0.1/32", IMPORT_ALLOWED_PORTS="*")
        deployment = Deployment(root, upload_concurrency=arguments.upload_concurrency)
        server = serve(qcow2)
        url = f"http://127.0.0.1:{server.server_address[1]}/random.qcow2"
        web_pid, worker_pid = deployment.children[1].pid, deployment.children[2].pid
        figures: dict[str, list[float]] = {}

        def note(name: str, seconds: float) -> None:
            figures.setdefault(name, []).append(size / seconds / 1e6)

        waits: list[float] = []

        def settle() -> None:
            # Each step starts with the file resident and nothing dirty waiting to be written: Glance's
            # store and dd leave a GiB for the kernel to write back, which took CPU from the next step;
            # and with the disk quiet (import_upload.quiet_disk: the trim of what a step deleted).
            os.sync()
            waits.append(quiet_disk(root))
            warm(qcow2)

        # One untimed PUT (the web process) and URL import (the worker) first: a process's first import
        # maps its buffers and imports what it had not needed yet (a console serving imports is past that).
        import_once(deployment, qcow2, "qcow2", "put", "warm-up")
        url_import_once(deployment, url, "warm-up-url", server)
        # Sampled four times a second: each sample reads /proc for every thread, CPU the imports need.
        with PeakMemory(web_pid, 0.25) as web_memory, PeakMemory(worker_pid, 0.25) as worker_memory:
            for round_number in range(arguments.rounds):
                for tool in ("md5sum", "sha256sum", "cat"):
                    settle()
                    note(tool, timed_command([tool, str(qcow2)] if tool != "cat" else ["cat", str(qcow2)]))
                for name in ("md5", "sha256"):
                    settle()
                    note(f"hashlib {name}", hash_rate(qcow2, name))
                settle()
                note("blake3 (chunk names)", hash_rate(qcow2, "blake3"))
                settle()
                note("read into a buffer", read_rate(qcow2))
                settle()
                dd_out = root / "storage" / "dd.out"
                dd_out.parent.mkdir(exist_ok=True)
                note(
                    "dd conv=fdatasync",
                    timed_command(
                        ["dd", f"if={qcow2}", f"of={dd_out}", "bs=4M", "conv=fdatasync", "status=none"]
                    ),
                )
                dd_out.unlink()
                settle()
                note("the store's writes", store_write_rate(qcow2, root / "storage" / "writes"))
                for protocol in ("put", "tus"):
                    settle()
                    _received, total = import_once(
                        deployment, qcow2, "qcow2", protocol, f"{protocol}-{round_number}"
                    )
                    note(f"upload {protocol.upper()} to available", total)
                settle()
                from_call, from_first_byte = url_import_once(deployment, url, f"url-{round_number}", server)
                note("URL import, API call to available", from_call)
                note("URL import, first byte to available", from_first_byte)
                settle()
                note("download link (curl)", download_once(deployment, latest_image(deployment)))
                if glance is not None:
                    settle()
                    note("Glance upload to active", glance.glance_upload(qcow2))
                    settle()
                    note("Glance web-download to active", glance.glance_web_download(url))

        medians = {name: statistics.median(values) for name, values in figures.items()}
        # The fastest implementation of each step is the one an import may use.
        md5 = max(medians["md5sum"], medians["hashlib md5"])
        sha256 = max(medians["sha256sum"], medians["hashlib sha256"])
        read = max(medians["cat"], medians["read into a buffer"])
        blake3 = medians["blake3 (chunk names)"]
        other = 1 / (1 / sha256 + 1 / blake3 + 1 / read)
        bound = min(md5, other)
        writes = medians["the store's writes"]
        print(
            f"limits: {arguments.size_mib} MiB of random data as qcow2 ({size / 1e6:.0f} MB), "
            f"medians of {arguments.rounds} interleaved rounds, {time.strftime('%Y-%m-%d')}; upload "
            f"concurrency {arguments.upload_concurrency}"
        )
        print(
            f"machine: {os.cpu_count()} CPUs (shared with other work: figures are noisy), {socket.gethostname()}"
        )
        print(
            f"hash bound: min(md5 {md5:.0f}, other core 1/(1/sha256 {sha256:.0f} + 1/blake3 {blake3:.0f} + "
            f"1/read {read:.0f}) = {other:.0f}) = {bound:.0f} MB/s"
        )
        if writes < bound:
            print(
                f"store bound: the disk takes the store's writes at {writes:.0f} MB/s, below the hash bound: "
                f"here the disk, not the hashing, limits every import (give --dir a tmpfs mount to measure "
                f"the rest)"
            )
        for name, value in medians.items():
            extra = ""
            if name.startswith(("upload", "URL import")):
                fraction = value / medians["md5sum"] * 100
                # (one decimal: 89.7% is a miss, which a rounded "90%" would hide)
                goal = (
                    "" if "API call" in name else f" (goal >= 90%: {'met' if fraction >= 90 else 'missed'})"
                )
                extra = f"  {fraction:5.1f}% of md5sum{goal}"
                if writes < bound:
                    extra += f", {value / writes * 100:.0f}% of the store's writes"
            rounds = "/".join(f"{each:.0f}" for each in figures[name])
            print(f"  {name:38s} {value:8.0f} MB/s  {value / bound * 100:5.0f}% of bound{extra}  ({rounds})")
        if glance is not None:
            for ours, theirs in (
                ("upload PUT to available", "Glance upload to active"),
                ("URL import, API call to available", "Glance web-download to active"),
            ):
                ratio = medians[ours] / medians[theirs]
                print(
                    f"  {ours} / {theirs}: {ratio:.2f}x (goal >= 3.5x: {'met' if ratio >= 3.5 else 'missed'}; "
                    f"an import at the MD5 rate would make {md5 / medians[theirs]:.2f}x)"
                )
        print(
            f"peak RSS, largest process: web {web_memory.each / MiB:.0f} MiB, worker "
            f"{worker_memory.each / MiB:.0f} MiB (each process tree: web {web_memory.peak / MiB:.0f} MiB, "
            f"worker {worker_memory.peak / MiB:.0f} MiB; a forked child counts its parent's pages again)"
        )
        print(
            f"before the steps: waited {sum(waits):.1f} s in all for a quiet disk (at most {max(waits):.1f} s "
            f"at once)"
        )
        if arguments.memory_gib:
            qcow2.unlink()
            big = files / "big.qcow2"
            raw = files / "big.raw"
            write_random(raw, arguments.memory_gib * 1024 * MiB)
            subprocess.run(
                ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(big)], check=True
            )
            raw.unlink()
            with PeakMemory(web_pid) as web_memory, PeakMemory(worker_pid) as worker_memory:
                _received, total = import_once(deployment, big, "qcow2", "put", "memory-put")
            print(
                f"{arguments.memory_gib} GiB PUT to available: {big.stat().st_size / total / 1e6:.0f} MB/s; "
                f"peak RSS, largest process: web {web_memory.each / MiB:.0f} MiB, worker "
                f"{worker_memory.each / MiB:.0f} MiB (trees {web_memory.peak / MiB:.0f} and "
                f"{worker_memory.peak / MiB:.0f} MiB)"
            )
    finally:
        if server is not None:
            server.shutdown()
        if deployment is not None:
            deployment.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
