"""'Retrieve existing images' of a standalone storage (seed 003), from the admin page to `available`."""

import pytest

from images.models import Image, UploadSession
from tests.images.imports.conftest import MiB, make_iso, stored_bytes


@pytest.fixture
def incoming(standalone, disks):
    mount = standalone.mount_path
    directory = disks.root.parent / "store" / "incoming"
    directory.mkdir(parents=True)
    qcow2 = disks.convert(disks.raw(size=4 * MiB), "qcow2")
    (directory / "centos 7.9.qcow2").write_bytes(qcow2.read_bytes())
    (directory / "cloud.img").write_bytes(qcow2.read_bytes())  # a qcow2 despite its name
    (directory / "nested").mkdir()
    make_iso(directory / "nested" / "installer.iso")
    (directory / "README.txt").write_text("not an image")
    assert str(directory).startswith(mount)
    return directory


def _post(admin_client, storage, tenant, directory, **extra):
    return admin_client.post(
        f"/admin/storage/imagestorage/{storage.pk}/retrieve/",
        {"directory": directory, "tenant": tenant.pk, **extra},
    )


def test_find_lists_the_image_files_under_the_directory(admin_client, standalone, tenant, incoming):
    page = admin_client.get(f"/admin/storage/imagestorage/{standalone.pk}/change/")
    assert f"/admin/storage/imagestorage/{standalone.pk}/retrieve/" in page.content.decode()

    response = _post(admin_client, standalone, tenant, "incoming", find="1")

    assert response.status_code == 200
    found = {item.path.name: item.disk_format for item in response.context["found"]}
    assert found == {"centos 7.9.qcow2": "qcow2", "cloud.img": "qcow2", "installer.iso": "iso"}
    assert not Image.objects.exists()


def test_retrieve_imports_each_file_through_the_pipeline(
    admin_client, standalone, tenant, incoming, django_capture_on_commit_callbacks, run_jobs
):
    paths = [str(incoming / "centos 7.9.qcow2"), str(incoming / "nested" / "installer.iso")]
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(admin_client, standalone, tenant, "incoming", retrieve="1", path=paths)
    assert response.status_code == 302
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    images = {image.name: image for image in Image.objects.all()}
    assert set(images) == {"centos 7.9", "installer"}
    for image in images.values():
        assert image.status == Image.Status.AVAILABLE, image.error
        assert image.source == Image.Source.STORAGE_SCAN and image.tenant == tenant
    assert images["installer"].kind == Image.Kind.ISO
    assert stored_bytes(images["centos 7.9"]) == (incoming / "centos 7.9.qcow2").read_bytes()
    assert (incoming / "centos 7.9.qcow2").exists()  # the file stays where it was
    session = UploadSession.objects.get(image=images["centos 7.9"])
    assert session.source_url.endswith("/incoming/centos%207.9.qcow2")

    again = _post(admin_client, standalone, tenant, "incoming", find="1")
    imported = {item.path.name for item in again.context["found"] if item.imported}
    assert imported == {"centos 7.9.qcow2", "installer.iso"}


@pytest.mark.parametrize("directory", ["..", "../..", "/etc", "chunks", "missing"])
def test_directories_outside_the_mount_path_or_of_the_store_are_refused(
    admin_client, standalone, tenant, incoming, directory
):
    response = _post(admin_client, standalone, tenant, directory, find="1")

    assert response.status_code == 200
    assert response.context["form"].errors["directory"]
    assert response.context["found"] is None


def test_a_tenant_user_cannot_retrieve(owner_client, standalone, tenant, incoming):
    response = _post(owner_client, standalone, tenant, "incoming", retrieve="1")
    assert response.status_code == 302 and "/login/" in response.url
    assert not Image.objects.exists()
