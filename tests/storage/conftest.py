import os
import uuid

import pytest

from storage.backends import get_backend
from storage.models import ImageStorage

MiB = 1024 * 1024


@pytest.fixture
def make_standalone(db, tmp_path):
    """A saved standalone ImageStorage under tmp_path (no reserve unless given) and its backend."""

    def make(name=None, *, concurrency=4, reserved_bytes=0, **fields):
        name = name or f"local-{uuid.uuid4().hex[:6]}"
        storage = ImageStorage.objects.create(
            name=name,
            kind=ImageStorage.Kind.STANDALONE,
            mount_path=str(tmp_path / name),
            reserved_bytes=reserved_bytes,
            upload_concurrency=concurrency,
            download_concurrency=concurrency,
            **fields,
        )
        return storage, get_backend(storage)

    return make


def random_bytes(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (different seeds share no 4 MiB chunk)."""
    import random

    return random.Random(seed).randbytes(size)


def read_all(backend, key, start=0, end=None) -> bytes:
    return b"".join(backend.read_range(key, start, end))


def files_under(path) -> list[str]:
    found = []
    for directory, _dirs, names in os.walk(path):
        found.extend(os.path.join(directory, name) for name in names)
    return found
