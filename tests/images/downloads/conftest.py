"""Fixtures of the download and export tests: storages, images stored in them, links."""

import random
import subprocess
import uuid
from pathlib import Path

import pytest

from images.models import Image, ImageReplica
from storage.backends import get_backend
from storage.models import ImageStorage

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fresh_usage_cache():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def standalone(db, tmp_path):
    return ImageStorage.objects.create(
        name=f"local-{uuid.uuid4().hex[:6]}",
        kind=ImageStorage.Kind.STANDALONE,
        mount_path=str(tmp_path / "store"),
        reserved_bytes=0,
        upload_concurrency=4,
        download_concurrency=4,
    )


@pytest.fixture
def distributed(db, s3_endpoint):
    storage = ImageStorage(
        name=f"s3-{uuid.uuid4().hex[:6]}",
        kind=ImageStorage.Kind.DISTRIBUTED,
        endpoint_url=s3_endpoint,
        region="us-east-1",
        bucket=f"downloads-{uuid.uuid4().hex[:12]}",
        access_key="test-access",
        reserved_bytes=0,
        upload_concurrency=4,
        download_concurrency=4,
    )
    storage.set_secret_key("test-secret")
    storage.save()
    get_backend(storage).test_connection()
    return storage


def raw_disk(path: Path, *, size: int, seed: int = 7) -> Path:
    """Pseudo-random data with zero blocks (holes in a chunk store) between."""
    rnd = random.Random(seed)
    block = 256 * 1024
    with open(path, "wb") as file:
        for index in range(size // block):
            file.write(rnd.randbytes(block) if index % 4 else bytes(block))
    return path


def qemu_img(*args) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def store_image(tenant, tmp_path):
    """store_image(storage, size=..., fmt="qcow2") -> an available image whose qcow2 (or raw) bytes are
    in `storage` as a ready replica, with its size, MD5 and SHA256."""

    def make(storage, *, size=8 * MiB, fmt="qcow2", name=None, tenant_=None, seed=7):
        raw = raw_disk(tmp_path / f"src-{uuid.uuid4().hex[:6]}.raw", size=size, seed=seed)
        path = raw
        if fmt != "raw":
            path = raw.with_suffix("." + fmt)
            qemu_img("convert", "-f", "raw", "-O", fmt, str(raw), str(path))
        image = Image.objects.create(
            tenant=tenant_ or tenant,
            name=name or f"disk-{uuid.uuid4().hex[:6]}",
            disk_format=fmt,
            status=Image.Status.AVAILABLE,
            stage=Image.Stage.NONE,
            storage=storage,
            virtual_size=size,
        )
        result = get_backend(storage).ingest(path, key=str(image.pk))
        Image.objects.filter(pk=image.pk).update(size=result.size, md5=result.md5, sha256=result.sha256)
        image.refresh_from_db()
        ImageReplica.objects.create(
            image=image, storage=storage, key=str(image.pk), state=ImageReplica.State.READY, size=result.size
        )
        image.source_path = path
        image.raw_path = raw
        return image

    return make
