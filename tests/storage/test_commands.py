"""addstorage, storageusage, cleanupstorage."""

import io

import pytest
from django.core.management import CommandError, call_command

from storage.models import ImageStorage

from .conftest import MiB, random_bytes
from .test_cleanup_standalone import age_everything


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_addstorage_standalone_and_distributed(tmp_path, s3_endpoint):
    out = run(
        "addstorage",
        "--kind",
        "standalone",
        "--name",
        "disk",
        "--path",
        str(tmp_path / "disk"),
        "--upload-concurrency",
        "4",
    )
    assert "Added standalone storage “disk”" in out and "connected" in out
    assert ImageStorage.objects.get(name="disk").upload_concurrency == 4

    out = run(
        "addstorage",
        "--kind",
        "distributed",
        "--name",
        "s3",
        "--endpoint",
        s3_endpoint,
        "--bucket",
        "cmd-bucket",
        "--access-key",
        "K",
        "--secret-key",
        "S",
        "--capacity-gib",
        "10",
    )
    storage = ImageStorage.objects.get(name="s3")
    assert storage.state == "connected" and storage.get_secret_key() == "S"
    assert storage.capacity_bytes == 10 * 1024**3


@pytest.mark.django_db
def test_addstorage_refuses_a_system_directory():
    with pytest.raises(CommandError, match="mount_path: .*system directory /usr/bin"):
        run("addstorage", "--kind", "standalone", "--name", "bad", "--path", "/usr/bin/images")
    assert not ImageStorage.objects.exists()


def test_storageusage_and_cleanupstorage(make_standalone, make_image):
    storage, backend = make_standalone("local-disk")
    image = make_image(storage, random_bytes(8 * MiB, 1))
    out = run("storageusage")
    assert "local-disk" in out and "8.0 MB" in out

    image.delete()
    age_everything(backend)
    out = run("cleanupstorage", "local-disk")
    assert out.startswith("8.0 MB freed.")
    with pytest.raises(CommandError, match="No storage is named “nope”"):
        run("cleanupstorage", "nope")


def test_storageusage_prints_long_names_whole_in_aligned_columns(make_standalone):
    long_name = "datacenter-east-rack-07-fast-nvme-" + "x" * 60
    make_standalone(long_name)
    make_standalone("short")
    lines = run("storageusage").splitlines()
    assert any(line.startswith(long_name + " ") for line in lines)
    kind_column = {line.index(" standalone") for line in lines[1:]}
    assert len(kind_column) == 1  # every row's next column starts at the same place
