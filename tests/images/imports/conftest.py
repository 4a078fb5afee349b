"""Fixtures of the import pipeline's tests: storages, disk images made with qemu-img, imports."""

import os
import random
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from images.models import Image
from images.services import image_import_create, upload_begin
from images.services.receiving import ImportReceiver
from storage.backends import get_backend
from storage.models import ImageStorage
from tenants import services

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fresh_usage_cache():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def standalone(db, tmp_path):
    (tmp_path / "store").mkdir()
    return ImageStorage.objects.create(
        name=f"local-{uuid.uuid4().hex[:6]}",
        kind=ImageStorage.Kind.STANDALONE,
        mount_path=str(tmp_path / "store"),
        reserved_bytes=0,
        upload_concurrency=4,
    )


@pytest.fixture
def distributed(db, s3_endpoint):
    storage = ImageStorage(
        name=f"s3-{uuid.uuid4().hex[:6]}",
        kind=ImageStorage.Kind.DISTRIBUTED,
        endpoint_url=s3_endpoint,
        region="us-east-1",
        bucket=f"imports-{uuid.uuid4().hex[:12]}",
        access_key="test-access",
        reserved_bytes=0,
        upload_concurrency=4,
    )
    storage.set_secret_key("test-secret")
    storage.save()
    get_backend(storage).test_connection()
    return storage


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


class Disks:
    """Disk images built with qemu-img from the same pseudo-random raw content."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(exist_ok=True)

    def raw(self, name="disk.raw", size=6 * MiB, seed=1) -> Path:
        path = self.root / name
        rnd = random.Random(seed)
        # Data with holes: random blocks and zero blocks, so sparse handling matters.
        blocks = []
        for index in range(size // (256 * 1024)):
            blocks.append(rnd.randbytes(256 * 1024) if index % 3 else bytes(256 * 1024))
        path.write_bytes(b"".join(blocks))
        return path

    def convert(self, source: Path, fmt: str, name: str | None = None, *options) -> Path:
        target = self.root / (name or f"{source.stem}.{fmt}")
        qemu_img(
            "convert", "-f", "raw", "-O", {"vhd": "vpc"}.get(fmt, fmt), *options, str(source), str(target)
        )
        return target

    def ova(self, disk: Path, name="appliance.ova", *, extra=(), ovf_href=None) -> Path:
        path = self.root / name
        href = ovf_href or disk.name
        ovf = (
            '<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" '
            'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References>'
            f'<File ovf:id="file1" ovf:href="{href}"/></References><DiskSection>'
            '<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1" '
            'ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>'
            "</DiskSection></Envelope>"
        ).encode()
        import io

        with tarfile.open(path, "w") as archive:
            info = tarfile.TarInfo("appliance.ovf")
            info.size = len(ovf)
            archive.addfile(info, io.BytesIO(ovf))
            archive.add(str(disk), arcname=disk.name)
            for member in extra:
                archive.addfile(*member)
        return path


@pytest.fixture
def disks(tmp_path):
    return Disks(tmp_path / "disks")


FIELDS = {
    "kind": Image.Kind.SYSTEM,
    "os_type": Image.OSType.LINUX,
    "platform": "CentOS",
    "os_version": "7.9",
    "architecture": Image.Architecture.X86_64,
    "boot_mode": Image.BootMode.BIOS,
    "source": Image.Source.UPLOAD,
}


@pytest.fixture
def start_import(tenant, owner):
    def start(storage, fmt, *, name=None, **fields):
        values = {**FIELDS, "name": name or f"img-{uuid.uuid4().hex[:6]}", "storage": storage}
        values["disk_format"] = values["source_format"] = fmt
        if fmt == "iso":
            values["kind"] = Image.Kind.ISO
        values.update(fields)
        return image_import_create(tenant=tenant, fields=values, actor=owner)

    return start


def send_file(image, path, *, pieces=1, enqueue=True):
    """Upload a file's bytes through receivers, in `pieces` requests (each resuming the previous)."""
    data = Path(path).read_bytes()
    upload_begin(image_id=image.pk, length=len(data), filename=os.path.basename(path))
    bounds = [len(data) * i // pieces for i in range(pieces + 1)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        with ImportReceiver(image_id=image.pk, offset=start, enqueue=enqueue) as receiver:
            for offset in range(start, end, 1024 * 1024):
                receiver.write(data[offset : min(end, offset + 1024 * 1024)])
            receiver.commit()


def stored_bytes(image) -> bytes:
    image.refresh_from_db()
    replica = image.replicas.get()
    return b"".join(get_backend(replica.storage).read_range(replica.key))


def make_iso(path: Path, *, sectors: int = 1024, seed: int = 3) -> Path:
    """A minimal ISO 9660 file: system area, primary volume descriptor, terminator, then data."""
    import struct

    pvd = bytearray(2048)
    pvd[0:7] = b"\x01CD001\x01"
    pvd[40:72] = b"IMAGECONSOLE".ljust(32)
    pvd[80:88] = struct.pack("<I", sectors) + struct.pack(">I", sectors)
    pvd[128:132] = struct.pack("<H", 2048) + struct.pack(">H", 2048)
    terminator = bytearray(2048)
    terminator[0:7] = b"\xffCD001\x01"
    body = random.Random(seed).randbytes((sectors - 18) * 2048)
    path.write_bytes(bytes(16 * 2048) + bytes(pvd) + bytes(terminator) + body)
    return path


@pytest.fixture
def token(db):
    def make(user):
        return services.api_token_create(user=user)[1]

    return make


@pytest.fixture
def tus_uploader(live_server, owner, token):
    """A tuspy uploader of `path` for `image`, as the owner, over HTTP to the live server."""
    from tusclient import client as tus_client

    key = token(owner)

    def make(path, image, *, chunk_size):
        client = tus_client.TusClient(
            f"{live_server.url}/api/v1/uploads/", headers={"Authorization": f"Token {key}"}
        )
        return client.uploader(
            file_path=str(path), chunk_size=chunk_size, metadata={"image_id": str(image.pk)}
        )

    return make


def qemu_nbd_serving(directory) -> bool:
    """A qemu-nbd reads a file in `directory` (a conversion to qcow2 is under way); asks /proc, not the
    database, so a test may call it while a forked worker uses the connection."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read()
        except OSError:
            continue
        if b"qemu-nbd" in command and str(directory).encode() in command:
            return True
    return False


@pytest.fixture
def short_staging_root(settings):
    """A staging root with a path as short as production's, so that qemu-nbd's socket goes into the
    import's staging directory (and with it when a killed worker cannot remove it), not into /tmp."""
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="st-")
    settings.STAGING_ROOT = Path(root)
    yield settings.STAGING_ROOT
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def vhdx_table_unreadable(monkeypatch):
    """As for a VHDX inside an OVA, or one whose log must be replayed: images.vhdx cannot tell, and the
    conversion goes through qemu-img convert and a scratch file."""
    from images.services import pipeline

    monkeypatch.setattr(pipeline, "vhdx_extents", lambda path, *, virtual_size: None)
