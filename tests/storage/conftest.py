import os
import subprocess
import uuid

import pytest

from storage.backends import get_backend
from storage.models import ImageStorage

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fresh_usage_cache():
    """Usage is cached by storage id, and ids repeat across tests."""
    from django.core.cache import cache

    cache.clear()


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


@pytest.fixture
def make_server_storage(db, tmp_path, storage_server):
    """A saved standalone (server) ImageStorage on the session's storage server, its directory under
    tmp_path (the server shares this machine's file systems), added by password: its key installed."""
    from storage.backends.server import enroll

    from .servers import ROOT_PASSWORD

    def make(name=None, *, concurrency=4, reserved_bytes=0, server=None, **fields):
        name = name or f"server-{uuid.uuid4().hex[:6]}"
        server = server or storage_server
        storage = ImageStorage(
            name=name,
            kind=ImageStorage.Kind.SERVER,
            host=server.address,
            ssh_port=server.port,
            ssh_username="root",
            mount_path=str(tmp_path / name),
            reserved_bytes=reserved_bytes,
            upload_concurrency=concurrency,
            download_concurrency=concurrency,
            **fields,
        )
        enroll(storage, fields.pop("password", ROOT_PASSWORD))
        storage.save()
        backend = get_backend(storage)
        backend.test_connection()  # as adding it does: the directory exists
        return storage, backend

    return make


@pytest.fixture(params=["standalone", "server"])
def make_chunk_store(request, db):
    """make_standalone or make_server_storage: the chunk store on this machine or on a storage server."""
    return request.getfixturevalue(
        "make_standalone" if request.param == "standalone" else "make_server_storage"
    )


def chunk_name(data: bytes, backend=None) -> str:
    """The name a chunk holding `data` gets in `backend` (BLAKE3 in a store made now)."""
    from storage.backends import chunknames

    return chunknames.name_of(data, backend.chunk_names if backend is not None else chunknames.BLAKE3)


def random_bytes(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (different seeds share no 4 MiB chunk)."""
    import random

    return random.Random(seed).randbytes(size)


def cached_bytes(path) -> int:
    """How much of the file is in the page cache (util-linux fincore)."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.strip())


def read_all(backend, key, start=0, end=None) -> bytes:
    return b"".join(backend.read_range(key, start, end))


def files_under(path) -> list[str]:
    found = []
    for directory, _dirs, names in os.walk(path):
        found.extend(os.path.join(directory, name) for name in names)
    return found


@pytest.fixture
def make_s3(db, s3_endpoint):
    """A saved distributed ImageStorage on the moto endpoint, in a bucket of its own, and its backend."""

    def make(
        name=None, *, concurrency=4, reserved_bytes=0, bucket=None, connect=True, endpoint_url=None, **fields
    ):
        name = name or f"s3-{uuid.uuid4().hex[:6]}"
        storage = ImageStorage(
            name=name,
            kind=ImageStorage.Kind.DISTRIBUTED,
            endpoint_url=endpoint_url or s3_endpoint,
            region="us-east-1",
            bucket=bucket or f"bucket-{uuid.uuid4().hex[:12]}",
            access_key="test-access",
            reserved_bytes=reserved_bytes,
            upload_concurrency=concurrency,
            download_concurrency=concurrency,
            **fields,
        )
        storage.set_secret_key("test-secret")
        storage.save()
        backend = get_backend(storage)
        if connect:
            backend.test_connection()
        return storage, backend

    return make


@pytest.fixture
def make_image(tenant):
    """An available image whose bytes are stored on `storage` (a ready replica keyed by its id)."""
    import io

    from images.models import Image, ImageReplica

    def make(storage, data: bytes, *, name=None, tenant_=None):
        image = Image.objects.create(
            tenant=tenant_ or tenant,
            name=name or f"image-{uuid.uuid4().hex[:6]}",
            disk_format=Image.DiskFormat.RAW,
            status=Image.Status.AVAILABLE,
            stage=Image.Stage.NONE,
            storage=storage,
        )
        result = get_backend(storage).ingest(io.BytesIO(data), key=str(image.pk))
        Image.objects.filter(pk=image.pk).update(size=result.size, md5=result.md5, sha256=result.sha256)
        image.refresh_from_db()
        ImageReplica.objects.create(
            image=image, storage=storage, key=str(image.pk), state=ImageReplica.State.READY, size=result.size
        )
        return image

    return make


@pytest.fixture(scope="session")
def make_storage_server(tmp_path_factory):
    """Start storage servers (sshd in a network namespace of their own); all removed at the end."""
    from .servers import StorageServer, next_index, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    servers = []

    def make():
        server = StorageServer(tmp_path_factory.mktemp("server"), next_index())
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.remove()


@pytest.fixture(scope="session")
def storage_server(make_storage_server):
    """One storage server shared by the session's tests (tests that change it make their own)."""
    return make_storage_server()
