"""manage.py importimage and manage.py reconcile."""

import io

import pytest
from django.core.management import CommandError, call_command

from images.models import Image

from .conftest import MiB


@pytest.fixture
def default_storage(db):
    from storage.services import storage_create_default

    return storage_create_default()


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_importimage_qcow2_waits_until_available(
    tenant, default_storage, disks, django_capture_on_commit_callbacks
):
    qcow2 = disks.convert(disks.raw(size=3 * MiB), "qcow2")
    with django_capture_on_commit_callbacks(execute=True):
        out = run(
            "importimage",
            str(qcow2),
            "--tenant",
            "acme",
            "--name",
            "ops base",
            "--format",
            "qcow2",
            "--os-type",
            "linux",
            "--platform",
            "CentOS",
            "--os-version",
            "7.9",
            "--label",
            "ops",
            "--label",
            "base",
        )
    assert "Available:" in out
    image = Image.objects.get(name="ops base")
    assert image.status == Image.Status.AVAILABLE
    assert image.labels == ["ops", "base"] and image.platform == "CentOS"
    assert image.size == qcow2.stat().st_size


def test_importimage_in_the_background(
    tenant, default_storage, disks, run_jobs, django_capture_on_commit_callbacks
):
    vmdk = disks.convert(disks.raw(size=3 * MiB), "vmdk")
    with django_capture_on_commit_callbacks(execute=True):
        out = run(
            "importimage",
            str(vmdk),
            "--tenant",
            "acme",
            "--name",
            "converted",
            "--format",
            "vmdk",
            "--background",
        )
    assert "workers" in out
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image = Image.objects.get(name="converted")
    assert image.status == Image.Status.AVAILABLE and image.disk_format == "qcow2"


def test_importimage_says_why_it_failed(tenant, default_storage, disks):
    qcow2 = disks.convert(disks.raw(size=2 * MiB), "qcow2")
    with pytest.raises(CommandError, match="qcow2, not a raw image"):
        run("importimage", str(qcow2), "--tenant", "acme", "--name", "wrong", "--format", "raw")
    assert Image.objects.get(name="wrong").status == Image.Status.FAILED


def test_importimage_reports_bad_fields(tenant, default_storage, disks):
    with pytest.raises(CommandError, match="boot_mode"):
        run(
            "importimage",
            str(disks.raw(size=MiB)),
            "--tenant",
            "acme",
            "--name",
            "arm",
            "--format",
            "raw",
            "--architecture",
            "aarch64",
            "--boot-mode",
            "bios",
        )
    with pytest.raises(CommandError, match="No tenant"):
        run("importimage", str(disks.raw(size=MiB)), "--tenant", "nobody", "--name", "x", "--format", "raw")
    assert not Image.objects.exists()


def test_reconcile_command(db, settings, rq_redis):
    import uuid

    from rq import Worker

    orphan = settings.STAGING_ROOT / str(uuid.uuid4())
    orphan.mkdir()
    # This shell's REDIS_URL names a Redis no worker uses (a wrong or default address): refused, kept.
    with pytest.raises(CommandError, match="No RQ worker listens on this Redis .*var/redis.env"):
        run("reconcile")
    assert orphan.exists()

    worker = Worker(["imports", "convert", "default", "maintenance"], connection=rq_redis)
    worker.register_birth()
    try:
        out = run("reconcile")
    finally:
        worker.register_death()
    assert f"staging removed: {orphan.name}" in out
    assert not orphan.exists()


def test_reconcile_without_workers_when_asked(db, settings, rq_redis):
    import uuid

    orphan = settings.STAGING_ROOT / str(uuid.uuid4())
    orphan.mkdir()
    assert f"staging removed: {orphan.name}" in run("reconcile", "--without-workers")
