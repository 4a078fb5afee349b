"""The OpenStack Image API's speed through the real glance CLI: `glance image-create --file` of a 1 GiB
qcow2 to `active`, and `glance image-download`, in MB/s (10^6 bytes/s), beside the same file sent to
`available` through `/api/v1/` (one PUT), and downloaded by curl from the Image API, in the same run.

    .venv/bin/python bench/glance_api.py [--size-mib 1024] [--dir /tmp]

Everything runs on this machine as a deployment does (bench/import_upload.py's Deployment: gunicorn,
an RQ worker, a private redis-server, SQLite, a standalone storage). The glance CLI sends its file
chunked; gunicorn decodes it. Other people's work on the 2 shared CPUs shows up as noise: compare the
figures of one run.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_upload import PYTHON, Deployment, MiB, warm, write_random  # noqa: E402

BIN = Path(PYTHON).parent


def rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:7.1f} MB/s ({seconds:6.2f} s)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="glance-api-bench-", dir=arguments.dir))
    deployment = None
    try:
        raw = root / "random.raw"
        write_random(raw, arguments.size_mib * MiB)
        qcow2 = root / "random.qcow2"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
        raw.unlink()
        size = qcow2.stat().st_size
        deployment = Deployment(root)
        url = f"http://127.0.0.1:{deployment.port}/openstack/image"
        glance = [str(BIN / "glance"), "--os-image-url", url, "--os-auth-token", deployment.token,
                  "--os-image-api-version", "2"]  # fmt: skip

        warm(qcow2)
        start = time.perf_counter()
        image_id = deployment.create("api-v1", "qcow2")
        deployment.put(image_id, qcow2)
        deployment.wait_available(image_id)
        api_v1 = time.perf_counter() - start

        warm(qcow2)
        start = time.perf_counter()
        out = subprocess.run(
            [*glance, "image-create", "--name", "cli", "--disk-format", "qcow2", "--container-format", "bare",
             "--file", str(qcow2)], capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if out.returncode:
            raise RuntimeError(f"glance image-create: {out.stdout}\n{out.stderr}")
        out = out.stdout
        glance_id = re.search(r"^\|\s*id\s*\|\s*(\S+)", out, re.M).group(1)
        deployment.wait_available(glance_id)
        glance_upload = time.perf_counter() - start

        target = root / "downloaded.qcow2"
        start = time.perf_counter()
        subprocess.run([*glance, "image-download", "--file", str(target), glance_id], check=True,
                       capture_output=True, stdin=subprocess.DEVNULL)  # fmt: skip
        glance_download = time.perf_counter() - start
        assert target.stat().st_size == size
        target.unlink()
        start = time.perf_counter()
        subprocess.run(["curl", "-sf", "-o", str(target), "-H", f"X-Auth-Token: {deployment.token}",
                        f"{url}/v2/images/{glance_id}/file"], check=True)  # fmt: skip
        curl_download = time.perf_counter() - start
        assert target.stat().st_size == size

        print(f"file: {size / 1e6:.0f} MB qcow2 (random data)")
        print(f"upload to available, PUT /api/v1/images/ID/file:         {rate(size, api_v1)}")
        print(f"upload to active, glance image-create --file (chunked):  {rate(size, glance_upload)}")
        print(f"download, glance image-download:                         {rate(size, glance_download)}")
        print(f"download, curl GET /openstack/image/v2/images/ID/file:   {rate(size, curl_download)}")
    finally:
        if deployment is not None:
            deployment.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
