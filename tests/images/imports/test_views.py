"""The console's import pages: the wizard, the upload page, cancel, the detail page, and admin."""

import django_rq
import pytest

from images.models import Image
from tenants.models import Quota

from .conftest import MiB, send_file


@pytest.fixture
def default_storage(db):
    from storage.services import storage_create_default

    return storage_create_default()


def wizard_data(storage, **overrides):
    data = {
        "iso": "0",
        "name": "web base",
        "kind": "system",
        "disk_format": "qcow2",
        "import_method": "upload",
        "os_type": "linux",
        "architecture": "x86_64",
        "boot_mode": "bios",
        "platform": "Ubuntu",
        "os_version": "16.04",
        "storage": storage.pk,
        "virtio": "on",
    }
    data.update(overrides)
    return data


def test_wizard_shows_errors_next_to_their_fields(owner_client, default_storage):
    response = owner_client.post(
        "/images/import/", wizard_data(default_storage, name=" x", architecture="mips64el", os_version="99")
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-error-for="name"' in html and 'data-error-for="boot_mode"' in html
    assert not Image.objects.exists()


def test_wizard_for_a_local_file_answers_the_script(owner_client, default_storage):
    fetch = {"HTTP_X_REQUESTED_WITH": "fetch"}
    missing = owner_client.post("/images/import/", wizard_data(default_storage), **fetch)
    assert missing.status_code == 400
    assert "Choose the image file" in missing.content.decode()
    created = owner_client.post(
        "/images/import/", wizard_data(default_storage, file_size=str(5 * MiB)), **fetch
    )
    assert created.status_code == 200
    body = created.json()
    image = Image.objects.get(pk=body["id"])
    assert body["upload_page"] == f"/images/{image.pk}/upload/"
    assert body["tus_endpoint"] == "/api/v1/uploads/"
    assert image.status == Image.Status.UPLOADING and image.size == 5 * MiB


def test_wizard_refuses_a_file_over_the_quota(owner_client, tenant, default_storage):
    Quota.objects.filter(tenant=tenant).update(max_bytes=MiB)
    response = owner_client.post(
        "/images/import/", wizard_data(default_storage, file_size=str(2 * MiB)), HTTP_X_REQUESTED_WITH="fetch"
    )
    assert response.status_code == 400
    assert "quota" in response.content.decode()
    assert not Image.objects.exists()


def test_wizard_url_import_starts_the_fetch_job(
    owner_client, default_storage, rq_redis, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/images/import/",
            wizard_data(
                default_storage, import_method="url", url="https://mirror.example.com/images/web.qcow2"
            ),
        )
    assert response.status_code == 302 and response["Location"] == "/images/"
    image = Image.objects.get()
    assert image.source == Image.Source.URL and image.upload.source_url.endswith("web.qcow2")
    jobs = django_rq.get_queue("imports").get_jobs()
    assert [job.func_name for job in jobs] == ["images.jobs.import_fetch_job"]
    assert jobs[0].id == image.job_id


def test_iso_wizard(owner_client, default_storage):
    page = owner_client.get("/images/import/?kind=iso").content.decode()
    assert "Import ISO image" in page and 'name="disk_format"' not in page and 'name="cloud_init"' not in page
    response = owner_client.post(
        "/images/import/",
        wizard_data(default_storage, iso="1", name="installer", file_size="4096"),
        HTTP_X_REQUESTED_WITH="fetch",
    )
    assert response.status_code == 200, response.content
    image = Image.objects.get()
    assert image.kind == Image.Kind.ISO and image.disk_format == "iso"
    assert response.json()["list_url"] == "/images/iso/"


def test_view_only_members_cannot_import(subaccount_client, default_storage):
    assert subaccount_client.get("/images/import/").status_code == 403
    assert subaccount_client.post("/images/import/", wizard_data(default_storage)).status_code == 403


def test_upload_page_knows_where_to_resume(owner_client, standalone, start_import):
    image = start_import(standalone, "raw")
    from images.services import upload_begin

    session = upload_begin(image_id=image.pk, length=3 * MiB, filename="disk.raw")
    page = owner_client.get(f"/images/{image.pk}/upload/").content.decode()
    assert f'data-upload-url="http://testserver/api/v1/uploads/{session.pk}"' in page
    assert 'data-expected-size="3145728"' in page


def test_detail_page(
    owner_client, standalone, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    qcow2 = disks.convert(disks.raw(size=2 * MiB), "qcow2")
    image = start_import(standalone, "qcow2")
    summary = owner_client.get(f"/images/{image.pk}/summary/").content.decode()
    assert 'hx-trigger="every 2s"' in summary  # importing: the summary refreshes itself
    with django_capture_on_commit_callbacks(execute=True):
        send_file(image, qcow2)
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    image.refresh_from_db()
    page = owner_client.get(f"/images/{image.pk}/").content.decode()
    assert image.md5 in page and image.sha256 in page
    assert 'data-testid="replicas"' in page and standalone.name in page
    assert "Import image" in page  # the operation log, its action worded
    assert "hx-trigger" not in owner_client.get(f"/images/{image.pk}/summary/").content.decode()


def test_cancel_from_the_console(owner_client, standalone, start_import):
    image = start_import(standalone, "qcow2")
    response = owner_client.post(f"/images/{image.pk}/cancel/", {"next": "/images/"})
    assert response.status_code == 302 and response["Location"] == "/images/"
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "cancelled" in image.error


def test_another_tenants_image_is_a_404_everywhere(other_client, subaccount_client, standalone, start_import):
    image = start_import(standalone, "qcow2")
    for url in (f"/images/{image.pk}/", f"/images/{image.pk}/summary/", f"/images/{image.pk}/upload/"):
        assert other_client.get(url).status_code == 404
    assert other_client.post(f"/images/{image.pk}/cancel/").status_code == 404
    assert subaccount_client.post(f"/images/{image.pk}/cancel/").status_code == 403
    image.refresh_from_db()
    assert image.status == Image.Status.UPLOADING


def test_admin_lists_images_and_cancels_imports(admin_client, standalone, start_import):
    image = start_import(standalone, "qcow2")
    assert admin_client.get("/admin/images/image/").status_code == 200
    assert admin_client.get(f"/admin/images/image/{image.pk}/change/").status_code == 200
    assert admin_client.get("/admin/images/uploadsession/").status_code == 200
    response = admin_client.post(
        "/admin/images/image/", {"action": "cancel_imports", "_selected_action": [str(image.pk)]}
    )
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "platform-admin" in image.error
