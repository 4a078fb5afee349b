"""Exports: a `default` job writes one complete file per format into the image's storage; the Exported
tab, its links, delete, once per format, expunge, usage; exported vmdk and vhd import back equal."""

import hashlib
import io
import subprocess
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from images.downloads import services
from images.hooks import run_before_expunge
from images.models import DownloadLink, ExportedImage, Image
from storage.backends import get_backend
from tenants.models import OperationLog

from .conftest import MiB, qemu_img


def export(client, image, fmt, then="list"):
    return client.post(f"/images/{image.pk}/export/", {"format": fmt, "then": then})


def exported_file(export_row, tmp_path):
    """The export's bytes, read back through a download link."""
    link, token = services.link_create(image=export_row.image, actor=None, export=export_row)
    response = Client().get(services.link_path(link, token))
    if response.status_code == 302:
        import urllib.request

        with urllib.request.urlopen(response["Location"]) as remote:  # noqa: S310 - moto on 127.0.0.1
            data = remote.read()
    else:
        assert response.status_code == 200
        data = b"".join(response.streaming_content)
    path = tmp_path / f"export.{export_row.format}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["vmdk", "vhd"])
def test_exported_vmdk_and_vhd_import_back_equal(
    fmt, owner_client, standalone, store_image, run_jobs, tmp_path, django_capture_on_commit_callbacks
):
    image = store_image(standalone, size=6 * MiB, name="base")
    with django_capture_on_commit_callbacks(execute=True):
        response = export(owner_client, image, fmt)
    assert response.status_code == 302 and response["Location"] == "/images/exported/"
    row = ExportedImage.objects.get(image=image, format=fmt)
    assert row.status == "exporting"
    assert run_jobs(("default",)) == 0
    row.refresh_from_db()
    assert row.status == "ready" and row.progress == 100, row.error
    path = exported_file(row, tmp_path)
    assert hashlib.md5(path.read_bytes()).hexdigest() == row.md5 and path.stat().st_size == row.size
    info = qemu_img("info", "--output=json", "-f", {"vhd": "vpc"}.get(fmt, fmt), str(path))
    if fmt == "vmdk":
        assert '"create-type": "streamOptimized"' in info
    assert qemu_img(
        "compare", "-f", "qcow2", "-F", {"vhd": "vpc"}.get(fmt, fmt), str(image.source_path), str(path)
    )
    # Import it back through the import pipeline.
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "importimage",
            str(path),
            "--tenant",
            "acme",
            "--name",
            f"back-{fmt}",
            "--format",
            fmt,
            "--storage",
            standalone.name,
            "--background",
            stdout=io.StringIO(),
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    back = Image.objects.get(name=f"back-{fmt}")
    assert back.status == Image.Status.AVAILABLE, back.error
    copy = tmp_path / "back.qcow2"
    get_backend(standalone).copy_to_path(str(back.pk), copy)
    result = subprocess.run(
        [
            "qemu-img",
            "compare",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            str(image.raw_path.with_suffix(".qcow2")),
            str(copy),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert back.virtual_size == image.virtual_size


def test_export_on_s3_is_an_object_served_by_presigned_url(
    owner_client, distributed, store_image, run_jobs, tmp_path, django_capture_on_commit_callbacks
):
    image = store_image(distributed, size=4 * MiB, fmt="raw")
    with django_capture_on_commit_callbacks(execute=True):
        assert export(owner_client, image, "qcow2").status_code == 302
    assert run_jobs(("default",)) == 0
    row = ExportedImage.objects.get(image=image)
    assert row.status == "ready", row.error
    backend = get_backend(distributed)
    assert backend.export_size(row.key) == row.size
    assert backend.usage().used >= image.size + row.size
    path = exported_file(row, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
    # Several ranges are answered by the console, read from the object (S3 would send the whole file).
    link, token = services.link_create(image=image, actor=None, export=row)
    ranged = Client().get(services.link_path(link, token), HTTP_RANGE="bytes=0-9,-10")
    assert ranged.status_code == 206 and ranged["Content-Type"].startswith("multipart/byteranges")
    body, data = b"".join(ranged.streaming_content), path.read_bytes()
    assert data[:10] in body and data[-10:] in body and f"bytes {row.size - 10}-".encode() in body
    assert (
        subprocess.run(
            ["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(image.source_path), str(path)]
        ).returncode
        == 0
    )


def test_once_per_format_until_deleted_and_the_exported_tab(
    owner_client, standalone, store_image, run_jobs, tmp_path, django_capture_on_commit_callbacks
):
    image = store_image(standalone, size=2 * MiB)
    with django_capture_on_commit_callbacks(execute=True):
        export(owner_client, image, "raw")
    assert run_jobs(("default",)) == 0
    row = ExportedImage.objects.get(image=image)
    backend = get_backend(standalone)
    file = backend.export_path(row.key)
    assert file.exists() and file.parent.name == "exports"
    # The same format again is refused with a reason; another format is not.
    again = export(owner_client, image, "raw")
    assert again.status_code == 409 and "already exported" in again.content.decode()
    assert ExportedImage.objects.filter(image=image).count() == 1
    page = owner_client.get("/images/exported/").content.decode()
    assert (
        image.name in page
        and row.md5 in page
        and row.sha256 in page
        and 'data-testid="export-download"' in page
    )
    # A link to the export, then delete the export: file gone, link dead, the image stays.
    link, token = services.link_create(image=image, actor=None, export=row)
    assert Client().get(services.link_path(link, token)).status_code == 200
    assert owner_client.post(f"/images/exports/{row.pk}/delete/").status_code == 302
    assert not file.exists() and not ExportedImage.objects.filter(pk=row.pk).exists()
    assert Client().get(services.link_path(link, token)).status_code == 404
    assert Image.objects.get(pk=image.pk).status == Image.Status.AVAILABLE
    assert OperationLog.objects.filter(action="image.export.delete", target_id=str(image.pk)).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert export(owner_client, image, "raw").status_code == 302


def test_export_and_download_waits_then_offers_the_link(
    owner_client, standalone, store_image, run_jobs, django_capture_on_commit_callbacks
):
    image = store_image(standalone, size=2 * MiB)
    with django_capture_on_commit_callbacks(execute=True):
        response = export(owner_client, image, "qcow2", then="download")
    row = ExportedImage.objects.get(image=image)
    assert response["Location"] == f"/images/exports/{row.pk}/download/"
    waiting = owner_client.get(response["Location"]).content.decode()
    assert 'data-testid="export-wait"' in waiting and 'http-equiv="refresh"' in waiting
    assert run_jobs(("default",)) == 0
    ready = owner_client.get(response["Location"]).content.decode()
    assert 'data-testid="create-link"' in ready and ExportedImage.objects.get(pk=row.pk).md5 in ready
    created = owner_client.post(response["Location"])
    assert created.status_code == 201 and DownloadLink.objects.filter(export=row).count() == 1


def test_api_exports(
    owner, subaccount, standalone, store_image, run_jobs, django_capture_on_commit_callbacks, other_tenant
):
    from tenants import services as tenant_services

    api = Client(HTTP_AUTHORIZATION=f"Token {tenant_services.api_token_create(user=owner)[1]}")
    viewer = Client(HTTP_AUTHORIZATION=f"Token {tenant_services.api_token_create(user=subaccount)[1]}")
    image = store_image(standalone, size=2 * MiB)
    assert (
        viewer.post(
            f"/api/v1/images/{image.pk}/exports", {"format": "vhd"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert (
        api.post(
            f"/api/v1/images/{image.pk}/exports", {"format": "zip"}, content_type="application/json"
        ).status_code
        == 400
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/images/{image.pk}/exports", {"format": "vhd"}, content_type="application/json"
        )
    assert response.status_code == 202 and response.json()["status"] == "exporting"
    export_id = response.json()["id"]
    assert (
        api.post(
            f"/api/v1/images/{image.pk}/exports", {"format": "vhd"}, content_type="application/json"
        ).status_code
        == 409
    )
    assert run_jobs(("default",)) == 0
    body = api.get(f"/api/v1/exports/{export_id}").json()
    assert body["status"] == "ready" and body["md5"] and body["exported_at"]
    assert [e["id"] for e in api.get("/api/v1/exports/").json()] == [export_id]
    link = viewer.post(f"/api/v1/exports/{export_id}/download-links")  # the viewer may download it
    assert link.status_code == 201
    assert Client().get(urlsplit(link.json()["url"]).path).status_code == 200
    assert viewer.delete(f"/api/v1/exports/{export_id}").status_code == 403
    theirs = store_image(standalone, size=1 * MiB, tenant_=other_tenant)
    assert (
        api.post(
            f"/api/v1/images/{theirs.pk}/exports", {"format": "vhd"}, content_type="application/json"
        ).status_code
        == 404
    )
    assert api.delete(f"/api/v1/exports/{export_id}").status_code == 204
    assert api.get(f"/api/v1/exports/{export_id}").status_code == 404
    schema = api.get("/api/v1/schema/").content.decode()
    for path in ("/api/v1/images/{id}/download-links", "/api/v1/images/{id}/exports", "/api/v1/exports/{id}"):
        assert path in schema


@pytest.mark.parametrize("kind", ["standalone", "distributed"])
def test_expunge_hook_removes_exports_and_links(
    kind, request, store_image, run_jobs, tmp_path, django_capture_on_commit_callbacks, owner
):
    storage = request.getfixturevalue(kind)
    image = store_image(storage, size=2 * MiB)
    with django_capture_on_commit_callbacks(execute=True):
        row = services.export_create(image=image, fmt="vmdk", actor=owner)
    assert run_jobs(("default",)) == 0
    row.refresh_from_db()
    backend = get_backend(storage)
    assert backend.export_size(row.key) == row.size
    services.link_create(image=image, actor=owner)
    services.link_create(image=image, actor=owner, export=row)
    run_before_expunge(image_id=image.pk, tenant_id=image.tenant_id)
    assert not ExportedImage.objects.filter(image=image).exists()
    assert not DownloadLink.objects.filter(image=image).exists()
    from storage.backends import ReplicaNotFound

    with pytest.raises(ReplicaNotFound):
        backend.export_size(row.key)
    run_before_expunge(image_id=image.pk, tenant_id=image.tenant_id)  # idempotent


def test_failed_export_says_why_and_can_run_again(
    owner, standalone, store_image, run_jobs, django_capture_on_commit_callbacks
):
    image = store_image(standalone, size=2 * MiB)
    backend = get_backend(standalone)
    backend.delete(str(image.pk))  # the stored bytes vanished
    with django_capture_on_commit_callbacks(execute=True):
        row = services.export_create(image=image, fmt="vhd", actor=owner)
    assert run_jobs(("default",)) == 0
    row.refresh_from_db()
    assert row.status == "failed" and row.error
    with django_capture_on_commit_callbacks(execute=True):
        again = services.export_create(image=image, fmt="vhd", actor=owner)
    assert again.pk == row.pk and again.status == "exporting"


def test_expired_exports_are_swept(
    owner, standalone, store_image, run_jobs, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    image = store_image(standalone, size=1 * MiB)
    with django_capture_on_commit_callbacks(execute=True):
        row = services.export_create(image=image, fmt="qcow2", actor=owner)
    assert run_jobs(("default",)) == 0
    row.refresh_from_db()
    assert row.expires_at is not None
    assert services.exports_expire(now=row.expires_at - timedelta(minutes=1)) == 0
    assert services.exports_expire(now=row.expires_at + timedelta(minutes=1)) == 1
    assert not get_backend(standalone).export_path(row.key).exists()
    assert timezone.now() < row.expires_at


def test_an_export_whose_worker_died_fails_in_the_sweep(owner, standalone, store_image):
    from datetime import timedelta

    from django.utils import timezone

    image = store_image(standalone, size=1 * MiB)
    row = services.export_create(image=image, fmt="vhd", actor=owner)  # no worker runs it
    assert services.exports_expire(now=timezone.now() + timedelta(hours=1)) == 0
    assert ExportedImage.objects.get(pk=row.pk).status == "exporting"
    services.exports_expire(now=timezone.now() + timedelta(hours=7))
    row.refresh_from_db()
    assert row.status == "failed" and "worker stopped" in row.error


def test_expunging_from_the_recycle_bin_deletes_exports_links_and_files(
    owner, standalone, store_image, run_jobs, django_capture_on_commit_callbacks
):
    """The recycle bin's expunge job calls the downloads' hook: not only the hook itself works."""
    from recyclebin.services import image_expunge

    image = store_image(standalone, size=2 * MiB)
    with django_capture_on_commit_callbacks(execute=True):
        row = services.export_create(image=image, fmt="vhd", actor=owner)
    assert run_jobs(("default",)) == 0
    row.refresh_from_db()
    file = get_backend(standalone).export_path(row.key)
    assert file.exists()
    _link, token = services.link_create(image=image, actor=owner)
    export_link, export_token = services.link_create(image=image, actor=owner, export=row)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.DELETED)
    with django_capture_on_commit_callbacks(execute=True):
        image_expunge(image=Image.objects.get(pk=image.pk), actor=owner)
    assert run_jobs(("maintenance",)) == 0
    assert not Image.objects.filter(pk=image.pk).exists()
    assert not ExportedImage.objects.filter(pk=row.pk).exists() and not file.exists()
    assert not DownloadLink.objects.filter(image_id=image.pk).exists()
    assert Client().get(services.link_path(export_link, export_token)).status_code == 404


def test_a_standalone_export_is_handed_to_the_servers_sendfile(
    owner, standalone, store_image, run_jobs, django_capture_on_commit_callbacks
):
    """Through Django's WSGI handler, an export's link answers with a file object for the server's
    `wsgi.file_wrapper` (gunicorn sends it with sendfile): its descriptor positioned at the range."""
    import os

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from django.test.client import RequestFactory

    image = store_image(standalone, size=2 * MiB)
    with django_capture_on_commit_callbacks(execute=True):
        row = services.export_create(image=image, fmt="raw", actor=owner)
    assert run_jobs(("default",)) == 0
    row.refresh_from_db()
    link, token = services.link_create(image=image, actor=owner, export=row)
    environ = RequestFactory()._base_environ(
        PATH_INFO=services.link_path(link, token), REQUEST_METHOD="GET", HTTP_RANGE="bytes=1000-"
    )
    wrapped, closers = [], []

    def file_wrapper(filelike, block_size):
        # gunicorn sends from the descriptor's current offset: it must be the range's start.
        wrapped.append(os.lseek(filelike.fileno(), 0, os.SEEK_CUR))
        closers.append(filelike.close)
        return iter(lambda: filelike.read(block_size), b"")

    environ["wsgi.file_wrapper"] = file_wrapper
    answer = {}
    # As django.test.Client does: the handler must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = WSGIHandler()(environ, lambda status, headers: answer.update(status=status))
        data = b"".join(body)
        closers[0]()  # what the server calls when done (the response's close)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert answer["status"].startswith("206") and wrapped == [1000]
    assert data == get_backend(standalone).export_path(row.key).read_bytes()[1000:]


def test_a_running_export_shows_its_progress_on_its_row_and_polls(
    owner, owner_client, standalone, store_image
):
    image = store_image(standalone, size=1 * MiB)
    assert 'data-testid="row-export"' in owner_client.get("/images/").content.decode()
    row = services.export_create(image=image, fmt="vmdk", actor=owner)  # no worker runs it
    ExportedImage.objects.filter(pk=row.pk).update(progress=42)
    page = owner_client.get("/images/exported/").content.decode()
    assert 'data-status="exporting"' in page and 'data-testid="export-progress"' in page
    assert 'value="42"' in page and 'hx-trigger="every 2s"' in page
    ExportedImage.objects.filter(pk=row.pk).update(progress=43)
    table = owner_client.get("/images/exported/?part=table", HTTP_HX_REQUEST="true").content.decode()
    assert 'value="43"' in table and "<html" not in table
