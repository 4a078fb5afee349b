"""Interoperable import: info/import, info/stores, glance-direct (stage, import), web-download through
our URL import and its SSRF guard, tasks."""

import hashlib
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from images.models import Image
from openstack.image.staging import staged_path

from ..images.fetch.conftest import FileRoute
from .conftest import V2, MiB


@pytest.fixture
def file_server(disks):
    """A loopback HTTP server over the disks directory."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(disks.root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def create(glance, name="imported"):
    response = glance.post(
        f"{V2}/images",
        json.dumps({"name": name, "disk_format": "qcow2", "container_format": "bare"}),
        content_type="application/json",
    )
    assert response.status_code == 201
    return response.json()["id"]


def test_info_import_and_stores(glance, standalone):
    methods = glance.get(f"{V2}/info/import").json()["import-methods"]
    assert methods["value"] == ["glance-direct", "web-download"]
    [store] = glance.get(f"{V2}/info/stores").json()["stores"]
    assert store == {
        "id": str(standalone.pk),
        "description": standalone.name,
        "default": "true",
    }  # sic, as Glance


def test_glance_direct_stage_then_import(glance, disks, run_jobs, django_capture_on_commit_callbacks):
    data = disks.convert(disks.raw(size=3 * MiB), "qcow2").read_bytes()
    image_id = create(glance)
    assert glance.post(f"{V2}/images/{image_id}/import", json.dumps({"method": {"name": "glance-direct"}}),
                       content_type="application/json").status_code == 409  # fmt: skip
    assert (
        glance.put(f"{V2}/images/{image_id}/stage", data, content_type="application/octet-stream").status_code
        == 204
    )
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "uploading"
    with django_capture_on_commit_callbacks(execute=True):
        response = glance.post(f"{V2}/images/{image_id}/import", json.dumps({"method": {"name": "glance-direct"}}),
                               content_type="application/json")  # fmt: skip
    assert response.status_code == 202
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    shown = glance.get(f"{V2}/images/{image_id}").json()
    assert shown["status"] == "active", Image.objects.get(pk=image_id).error
    assert shown["os_hash_value"] == hashlib.sha256(data).hexdigest()
    [task] = glance.get(f"{V2}/images/{image_id}/tasks").json()["tasks"]
    assert task["status"] == "success"


def test_web_download_runs_our_url_import(
    glance, disks, file_server, settings, run_jobs, django_capture_on_commit_callbacks
):
    settings.IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.IMPORT_ALLOWED_PORTS = ["*"]
    path = disks.convert(disks.raw(size=3 * MiB), "qcow2")
    image_id = create(glance)
    with django_capture_on_commit_callbacks(execute=True):
        response = glance.post(
            f"{V2}/images/{image_id}/import",
            json.dumps({"method": {"name": "web-download", "uri": f"{file_server}/{path.name}"}}),
            content_type="application/json",
        )
    assert response.status_code == 202
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "importing"
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    shown = glance.get(f"{V2}/images/{image_id}").json()
    assert shown["status"] == "active", Image.objects.get(pk=image_id).error
    assert shown["checksum"] == hashlib.md5(path.read_bytes()).hexdigest()


def test_web_download_from_a_loopback_or_metadata_address_is_refused(glance):
    for uri in ("http://127.0.0.1:9/x.qcow2", "http://169.254.169.254/latest/meta-data"):
        image_id = create(glance)
        response = glance.post(
            f"{V2}/images/{image_id}/import",
            json.dumps({"method": {"name": "web-download", "uri": uri}}),
            content_type="application/json",
        )
        assert response.status_code == 400, uri
        assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "queued"


def test_unknown_method_is_400(glance):
    image_id = create(glance)
    response = glance.post(f"{V2}/images/{image_id}/import", json.dumps({"method": {"name": "copy-image"}}),
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 400


def test_web_download_resumes_a_dropped_connection(
    glance,
    disks,
    http_server,
    fetch_settings,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    data = disks.convert(disks.raw(size=4 * MiB), "qcow2").read_bytes()
    server = http_server()
    server.routes["/cirros.qcow2"] = FileRoute(data, drop_at=len(data) // 2)
    image_id = create(glance)
    body = {"method": {"name": "web-download", "uri": server.url("/cirros.qcow2")}}
    with django_capture_on_commit_callbacks(execute=True):
        response = glance.post(
            f"{V2}/images/{image_id}/import", json.dumps(body), content_type="application/json"
        )
    assert response.status_code == 202
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    shown = glance.get(f"{V2}/images/{image_id}").json()
    assert shown["status"] == "active", Image.objects.get(pk=image_id).error
    assert shown["os_hash_value"] == hashlib.sha256(data).hexdigest()
    # The second request asked for the rest only.
    assert [r["headers"].get("Range") for r in server.requests] == [None, f"bytes={len(data) // 2}-"]


def test_staging_more_than_the_quota_allows_is_refused(glance, tenant, disks):
    from .test_images import chunked_put

    tenant.quota.max_bytes = 1 * MiB
    tenant.quota.save()
    data = disks.raw(size=3 * MiB).read_bytes()
    image_id = create(glance)
    # With a Content-Length: refused before a byte is kept; chunked: cut off at the limit.
    response = glance.put(f"{V2}/images/{image_id}/stage", data, content_type="application/octet-stream")
    assert response.status_code == 413 and b"quota" in response.content
    assert chunked_put(glance, f"{V2}/images/{image_id}/stage", data).status_code == 413
    staged = staged_path(image_id)
    assert not staged.exists() and not staged.with_suffix(".partial").exists()
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "queued"
    # Within the quota it is staged.
    small = data[: MiB // 2]
    assert chunked_put(glance, f"{V2}/images/{image_id}/stage", small).status_code == 204
    assert staged.read_bytes() == small
