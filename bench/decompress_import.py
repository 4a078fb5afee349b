"""Decompress-and-import pass rate of a compressed qcow2, per codec, beside the command-line decompressor
(`gzip -dc`, `xz -dc`, `zstd -dc`, `bzip2 -dc` to /dev/null) of the same file in the same run.

    .venv/bin/python bench/decompress_import.py [--size-mib 1024] [--dir /tmp] [--codecs gzip,xz,zstd,bzip2]

The image: a raw disk of a third zeros, a third random bytes and a third repetitive text, converted to
qcow2 with qemu-img, then compressed with each tool at its default level. "import pass" is what a
compressed URL import or upload does with every byte besides the storage's own writes: the stream
decompressor of images.decompress (1 MiB pieces, limits checked, zstd frames followed) handing each piece
to MD5 and SHA256, each on its own thread as the storage's writer hashes them.
"hash alone" is MD5 + SHA256 of the uncompressed image: the pass can be no faster than the lower of it
and the decompressor. Figures are MB/s of the decompressed image (10^6 bytes per second).

Goal (issue 20): at least 85% of the tool's rate, or of the hash bound, whichever is lower. The 2 CPUs
are shared with other people's work: compare the figures of one run.
"""

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
MiB = 1024 * 1024
TOOLS = {"gzip": ("gzip", ".gz"), "xz": ("xz", ".xz"), "zstd": ("zstd", ".zst"), "bzip2": ("bzip2", ".bz2")}


def make_image(directory: Path, size: int) -> Path:
    raw = directory / "disk.raw"
    rng = random.Random(20)
    words = [rng.randbytes(rng.randrange(3, 12)).hex().encode() for _ in range(4096)]
    with open(raw, "wb") as out:
        for index in range(size // MiB):
            kind = index % 3
            if kind == 0:
                out.write(bytes(MiB))
            elif kind == 1:
                out.write(os.urandom(MiB))
            else:
                text = b" ".join(rng.choice(words) for _ in range(MiB // 8))
                out.write(text[:MiB].ljust(MiB, b"\n"))
    qcow2 = directory / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    raw.unlink()
    return qcow2


def rate(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def tool_alone(codec: str, packed: Path) -> float:
    tool = TOOLS[codec][0]
    with open(os.devnull, "wb") as null:
        started = time.perf_counter()
        subprocess.run([tool, "-dc", str(packed)], stdout=null, check=True)
        return time.perf_counter() - started


def hash_alone(path: Path) -> float:
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    started = time.perf_counter()
    with open(path, "rb") as file:
        while block := file.read(MiB):
            md5.update(block)
            sha256.update(block)
    return time.perf_counter() - started


class Hashing:
    """MD5 and SHA256 each on a thread of its own, a few blocks queued, as the storage's writer hashes
    (storage.backends.standalone.ChunkWriter): the decompressor's thread only hands the blocks over."""

    QUEUE = 4

    def __init__(self):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self.md5, self.sha256, self.size = hashlib.md5(), hashlib.sha256(), 0
        self._threads = [ThreadPoolExecutor(max_workers=1) for _hasher in range(2)]
        self._pending = deque()

    def write(self, data):
        md5_thread, sha_thread = self._threads
        self._pending.append(
            (md5_thread.submit(self.md5.update, data), sha_thread.submit(self.sha256.update, data))
        )
        while len(self._pending) > self.QUEUE:
            for future in self._pending.popleft():
                future.result()
        self.size += len(data)

    def finish(self):
        while self._pending:
            for future in self._pending.popleft():
                future.result()
        for thread in self._threads:
            thread.shutdown()

    def reset(self):
        raise AssertionError


def import_pass(packed: Path) -> tuple[float, str]:
    from images.decompress import DecompressingSink

    target = Hashing()
    sink = DecompressingSink(target, limit=lambda: None, max_ratio=1000)
    started = time.perf_counter()
    with open(packed, "rb") as file:
        while block := file.read(MiB):  # the fetch hands blocks of 1 MiB
            sink.write(block)
    sink.finish()
    target.finish()
    return time.perf_counter() - started, target.sha256.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--codecs", default="gzip,xz,zstd,bzip2")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageconsole.settings")
    import django

    django.setup()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="decompress-bench-") as temporary:
        directory = Path(temporary)
        image = make_image(directory, args.size_mib * MiB)
        size = image.stat().st_size
        expected = hashlib.sha256(image.read_bytes()).hexdigest()
        hashed = rate(size, hash_alone(image))
        print(f"qcow2 {size / 1e6:.0f} MB; MD5 + SHA256 alone {hashed:.0f} MB/s")
        print(f"{'codec':6} {'compressed':>11} {'tool -dc':>10} {'import pass':>12} {'of bound':>9}")
        for codec in args.codecs.split(","):
            tool, suffix = TOOLS[codec]
            packed = image.with_name(image.name + suffix)
            with open(packed, "wb") as out:
                subprocess.run([tool, "-c", str(image)], stdout=out, check=True)
            alone = rate(size, tool_alone(codec, packed))
            seconds, digest = import_pass(packed)
            assert digest == expected, f"{codec}: the decompressed image differs"
            passed = rate(size, seconds)
            bound = min(alone, hashed)
            print(
                f"{codec:6} {packed.stat().st_size / 1e6:>8.0f} MB {alone:>6.0f} MB/s {passed:>7.0f} MB/s "
                f"{passed / bound:>8.0%}"
            )
            packed.unlink()


if __name__ == "__main__":
    main()
