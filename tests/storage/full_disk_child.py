"""Run by test_capacity.py inside a private mount namespace, on a small tmpfs mounted at argv[1].

Fills the storage in the way argv[2] names and prints what the caller asserts on, as JSON.
"""

import io
import json
import os
import random
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageconsole.settings")
django.setup()

from storage.backends import StorageFull, get_backend  # noqa: E402
from storage.models import ImageStorage  # noqa: E402

MiB = 1024 * 1024


def files(path):
    return sum(len(names) for _dir, _dirs, names in os.walk(path))


def main(mount: str, scenario: str, reserved: int) -> None:
    storage = ImageStorage(
        name="small",
        kind="standalone",
        mount_path=mount,
        reserved_bytes=reserved,
        upload_concurrency=4,
        download_concurrency=4,
    )
    backend = get_backend(storage)
    data = random.Random(1).randbytes(48 * MiB)
    outcome = {}
    try:
        if scenario == "expected-size":
            backend.open_writer("big", expected_size=len(data))
        else:
            backend.ingest_stream((data[i : i + MiB] for i in range(0, len(data), MiB)), key="big")
        outcome["error"] = None
    except StorageFull as error:
        outcome["error"] = str(error)
    outcome["manifests"] = files(backend.manifests_dir)
    outcome["chunks"] = files(backend.chunks_dir)
    outcome["tmp"] = files(backend.tmp_dir)
    # What failed left the space free: a small image still fits.
    small = random.Random(2).randbytes(MiB)
    backend.ingest(io.BytesIO(small), key="small")
    outcome["small_reads_back"] = b"".join(backend.read_range("small")) == small
    print(json.dumps(outcome))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
