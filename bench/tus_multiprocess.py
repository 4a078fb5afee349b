"""A tus upload in 16 MiB PATCHes that alternate between two web processes, against one PATCH, in one run.

    .venv/bin/python bench/tus_multiprocess.py [--size-mib 1024 [4096 ...]] [--patch-mib 16] [--dir /tmp]

Everything a deployment runs, on this machine (bench/import_upload.py's Deployment: a private
redis-server, SQLite, a standalone storage, an RQ worker), with two gunicorn instances (gthread, one
worker each) over them, as behind a round-robin proxy. For each size, two files of random data converted
to qcow2 (one per upload, so that no import finds its chunks stored already):

- one PATCH with the whole file to the first instance (tus-js-client's and tuspy's default);
- PATCHes of --patch-mib, the first instance, then the second, then the first...: each PATCH reaches the
  process that did not take the previous one, so it continues from the receive state kept in the database;
- the same PATCHes all to the first instance (each continues the live state of the one before): what
  any chunked upload costs, the durable commit of each PATCH (chunks and manifest fsynced, the offset
  written) that the client waits for before it sends the next one.

Printed: first byte to available in MB/s (10^6 bytes per second) for each, the chunked rate as a share
of the one-PATCH rate (issue 19's goal: at least 90%; before it, about 10%), the bytes read again
(UploadSession.bytes_reread; 0 is the goal), and the peak resident memory of each gunicorn instance and
of the RQ worker or its work horse (the largest single process of each) during each import. The machine is shared: compare figures of one run.
"""

import argparse
import base64
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from download import PeakMemory  # noqa: E402
from import_upload import BASE, PYTHON, Deployment, forget, free_port, warm, write_random  # noqa: E402

MiB = 1024 * 1024


class TwoWebDeployment(Deployment):
    """Deployment plus a second gunicorn on its own port, over the same database, Redis and storage."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.ports = [self.port, free_port()]
        self.start(
            [
                str(Path(PYTHON).parent / "gunicorn"),
                "imageconsole.wsgi:application",
                "-b",
                f"127.0.0.1:{self.ports[1]}",
                "-k",
                "gthread",
                "--threads",
                "4",
                "-w",
                "1",
                "--timeout",
                "3600",
            ],
            log="gunicorn2.log",
        )
        first_port = self.port
        self.port = self.ports[1]
        deadline = time.monotonic() + 30
        while True:
            try:
                self.request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the second gunicorn did not start; see gunicorn2.log") from None
                time.sleep(0.2)
        self.port = first_port
        self.kept: dict[int, tuple] = {}  # port: its kept-alive connection for PATCHes, last used
        # children: redis, gunicorn, rqworker, gunicorn 2
        self.gunicorns = [self.children[1].pid, self.children[3].pid]
        self.worker = self.children[2].pid

    def on(self, index: int):
        self.port = self.ports[index]
        return self

    def tus_create(self, image_id: str, length: int) -> str:
        metadata = f"image_id {base64.b64encode(image_id.encode()).decode()}"
        status, headers, data = self.request(
            "POST",
            "/api/v1/uploads/",
            headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(length), "Upload-Metadata": metadata},
        )
        if status != 201:
            raise RuntimeError(f"tus creation: {status} {data[:500]!r}")
        return "/" + headers["Location"].split("/", 3)[3]

    def patch(self, path: str, file, offset: int, length: int) -> int:
        """One PATCH on this instance's kept-alive connection (as tus-js-client's browser and tuspy's
        requests session keep theirs)."""
        connection, used = self.kept.get(self.port, (None, 0.0))
        if connection is None or time.monotonic() - used > 1:  # gunicorn closes after 2 s idle
            if connection is not None:
                connection.close()
            connection = self.connection()
        try:
            file.seek(offset)
            connection.putrequest("PATCH", path)
            for name, value in {
                "Authorization": f"Token {self.token}",
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(length),
            }.items():
                connection.putheader(name, value)
            connection.endheaders()
            remaining = length
            while remaining:
                block = file.read(min(4 * MiB, remaining))
                connection.send(block)
                remaining -= len(block)
            response = connection.getresponse()
            data = response.read()
            if response.status != 204:
                raise RuntimeError(f"PATCH at {offset}: {response.status} {data[:500]!r}")
            self.kept[self.port] = (connection, time.monotonic())
            return int(response.getheader("Upload-Offset"))
        except BaseException:
            connection.close()
            self.kept.pop(self.port, None)
            raise

    def bytes_reread(self, image_id: str) -> int:
        out = subprocess.run(
            [
                PYTHON,
                str(BASE / "manage.py"),
                "shell",
                "-c",
                f"from images.models import UploadSession; "
                f"print(UploadSession.objects.get(image_id='{image_id}').bytes_reread)",
            ],
            env=self.env,
            cwd=BASE,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return int(out[-1])


def upload(
    deployment: TwoWebDeployment, file: Path, label: str, patch: int | None, *, alternate=True
) -> dict:
    """First byte to available; patch None: one PATCH to the first instance."""
    size = file.stat().st_size
    image_id = deployment.on(0).create(label, "qcow2")
    path = deployment.tus_create(image_id, size)
    deployment.forget_chunks()  # (the same file again: see Deployment.forget_chunks)
    warm(file)
    memories = [PeakMemory(pid) for pid in (*deployment.gunicorns, deployment.worker)]
    for memory in memories:
        memory.__enter__()
    try:
        start = time.perf_counter()
        offset, sent = 0, 0
        with open(file, "rb") as body:
            while offset < size:
                length = size - offset if patch is None else min(patch, size - offset)
                offset = deployment.on(sent % 2 if alternate else 0).patch(path, body, offset, length)
                sent += 1
        received = time.perf_counter() - start
        deployment.on(0).wait_available(image_id)
        total = time.perf_counter() - start
    finally:
        for memory in memories:
            memory.__exit__(None, None, None)
    return {
        "patches": sent,
        "received": received,
        "total": total,
        "mbps": size / total / 1e6,
        "reread": deployment.bytes_reread(image_id),
        "rss": [memory.each for memory in memories],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, nargs="+", default=[1024])
    parser.add_argument("--patch-mib", type=int, default=16)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where files, storage and staging go")
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tus-multiprocess-", dir=arguments.dir))
    files = root / "files"
    files.mkdir()
    deployment = None
    try:
        deployment = TwoWebDeployment(root)
        print(
            f"tus_multiprocess: qcow2 of random data, PATCHes of {arguments.patch_mib} MiB alternating between "
            f"two gunicorn instances (1 worker, 4 threads each) vs one PATCH; SQLite, standalone storage"
        )
        print("machine: 2 CPUs shared with other work (other helpers' tests and benches): figures are noisy")
        for size_mib in arguments.size_mib:
            results = {}
            for mode in ("one", "chunked", "same"):
                raw = files / "random.raw"
                write_random(raw, size_mib * MiB)
                qcow2 = files / f"{mode}-{size_mib}.qcow2"
                subprocess.run(
                    ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True
                )
                raw.unlink()
                patch = None if mode == "one" else arguments.patch_mib * MiB
                results[mode] = upload(
                    deployment, qcow2, f"{mode}-{size_mib}", patch, alternate=mode != "same"
                )
                forget(qcow2)
                qcow2.unlink()
            for mode, label in (
                ("one", "one PATCH"),
                ("chunked", f"{arguments.patch_mib} MiB PATCHes, 2 procs"),
                ("same", f"{arguments.patch_mib} MiB PATCHes, 1 proc"),
            ):
                r = results[mode]
                web1, web2, worker = (value / MiB for value in r["rss"])
                print(
                    f"  {size_mib:5d} MiB {label:26s} {r['patches']:4d} PATCHes  {r['mbps']:6.0f} MB/s"
                    f"  {r['total']:7.2f} s (received {r['received']:.2f} s)  re-read {r['reread']} bytes"
                    f"  peak RSS web {web1:.0f}/{web2:.0f} MiB, worker {worker:.0f} MiB"
                )
            share = results["chunked"]["mbps"] / results["one"]["mbps"] * 100
            same = results["same"]["mbps"] / results["one"]["mbps"] * 100
            print(
                f"  {size_mib:5d} MiB chunked rate, alternating = {share:.0f}% of the one-PATCH rate (goal >= 90%);"
                f" all to one process = {same:.0f}%"
            )
            sys.stdout.flush()
    finally:
        if deployment is not None:
            deployment.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
