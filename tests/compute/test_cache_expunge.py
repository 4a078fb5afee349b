"""An expunged image's copies in the compute hosts' caches go with it (images.hooks.before_expunge), unless
another image with the same bytes may still use them."""

import subprocess
from pathlib import Path

import pytest

from compute.models import ImageCacheEntry
from compute.services.cache import cache_ensure
from images.models import Image
from images.services.lifecycle import image_delete
from recyclebin.services.bin import image_expunge

pytestmark = pytest.mark.django_db(transaction=True)


def _qcow2(tmp_path, name: str, fill: str) -> Path:
    raw = tmp_path / f"{name}.raw"
    raw.write_bytes(fill.encode() * (1024 * 1024))
    path = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, path], check=True)
    return path


def _expunge(image, owner, run_jobs) -> None:
    image_delete(image=image, actor=owner)
    image_expunge(image=Image.objects.get(pk=image.pk), actor=owner)
    assert run_jobs(queues=("maintenance",)) == 0
    assert not Image.objects.filter(pk=image.pk).exists()


def test_expunge_removes_the_image_from_the_hosts_caches(
    compute_host, import_image, owner, run_jobs, tmp_path
):
    image = import_image(_qcow2(tmp_path, "one", "a"))
    entry = cache_ensure(host=compute_host, image=image)
    assert Path(entry.path).exists()

    _expunge(image, owner, run_jobs)

    assert not ImageCacheEntry.objects.filter(pk=entry.pk).exists()
    assert not Path(entry.path).exists()


def test_a_copy_another_image_shares_is_kept_for_it(compute_host, import_image, owner, run_jobs, tmp_path):
    disk = _qcow2(tmp_path, "same", "b")
    first, second = import_image(disk), import_image(disk)
    assert first.sha256 == second.sha256
    entry = cache_ensure(host=compute_host, image=first)

    _expunge(first, owner, run_jobs)

    entry.refresh_from_db()
    assert entry.image_id == second.pk and Path(entry.path).exists()
    assert cache_ensure(host=compute_host, image=second).pk == entry.pk  # used as it is, not uploaded again

    _expunge(second, owner, run_jobs)
    assert not ImageCacheEntry.objects.filter(pk=entry.pk).exists()
    assert not Path(entry.path).exists()
