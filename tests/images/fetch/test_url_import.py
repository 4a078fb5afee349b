"""URL imports end to end: the API creates the image, a real RQ worker fetches it from a loopback server
into the import pipeline, and the image becomes available (or fails with a message a person can use)."""

import hashlib
import time
from urllib.parse import quote

import pytest
from django.urls import reverse

from images.models import Image, ImageReplica, UploadSession
from storage.backends import get_backend
from tenants import services
from tenants.models import Membership, OperationLog, Quota
from tests.images.imports.conftest import MiB, stored_bytes

from .conftest import FTP_PASSWORD, FTP_USER, FileRoute, Redirect, RequireBasicAuth

pytestmark = pytest.mark.usefixtures("fetch_settings")


@pytest.fixture(autouse=True)
def _fresh_usage_cache():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def api(client, db):
    def call(user, body):
        _token, key = services.api_token_create(user=user)
        return client.post(
            "/api/v1/images/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}"
        )

    return call


def body(storage, url, **overrides):
    values = {
        "name": "centos-7.9 from a mirror",
        "kind": "system",
        "disk_format": "qcow2",
        "os_type": "linux",
        "architecture": "x86_64",
        "boot_mode": "bios",
        "platform": "CentOS",
        "os_version": "7.9",
        "storage": storage.pk,
        "source": "url",
        "url": url,
    }
    values.update(overrides)
    return values


@pytest.fixture
def qcow2(disks):
    return disks.convert(disks.raw(size=6 * MiB), "qcow2").read_bytes()


def import_url(api, user, storage, url, django_capture_on_commit_callbacks, run_jobs, **overrides):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(user, body(storage, url, **overrides))
    assert response.status_code == 201, response.json()
    assert response.json()["source"] == "url"
    for _round in range(3):  # the fetch job, then the finish job, then the cleanup
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    return Image.objects.get(pk=response.json()["id"])


def test_http_import_resumes_a_dropped_connection_to_available(
    api,
    owner,
    standalone,
    qcow2,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    server = http_server()
    server.routes["/images/centos.qcow2"] = FileRoute(qcow2, drop_at=len(qcow2) // 2)
    sha = hashlib.sha256(qcow2).hexdigest()

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/images/centos.qcow2"),
        django_capture_on_commit_callbacks,
        run_jobs,
        sha256=sha,
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.source == Image.Source.URL
    assert image.sha256 == sha and image.size == len(qcow2) and image.virtual_size == 6 * MiB
    assert stored_bytes(image) == qcow2
    assert [r["headers"].get("Range") for r in server.requests] == [None, f"bytes={len(qcow2) // 2}-"]


def test_the_fetch_job_itself_makes_an_image_stored_as_it_arrived_available(
    api, owner, standalone, qcow2, http_server, django_capture_on_commit_callbacks, run_jobs, monkeypatch
):
    """No second job (a fork and a queue hop) between the last byte and `available`; and the job's
    finish takes the file's head from the receiver, not written to staging and read back."""
    import django_rq
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    from images.services.receiving import ImportReceiver

    def no_staging(receiver):
        raise AssertionError("the head was written to staging")

    monkeypatch.setattr(ImportReceiver, "_write_head", no_staging)

    server = http_server()
    server.routes["/centos.qcow2"] = FileRoute(qcow2)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(owner, body(standalone, server.url("/centos.qcow2")))
    queue = django_rq.get_queue("imports")
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs(queues=("imports",)) == 0

    image = Image.objects.get(pk=response.json()["id"])
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == qcow2
    ran = [
        Job.fetch(job_id, connection=queue.connection).func_name
        for job_id in FinishedJobRegistry(queue=queue).get_job_ids()
    ]
    assert ran == ["images.jobs.import_fetch_job"]
    assert queue.count == 0


def test_server_that_cannot_resume_restarts_the_import_from_zero(
    api,
    owner,
    standalone,
    qcow2,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    server = http_server()
    server.routes["/centos.qcow2"] = FileRoute(qcow2, ranges=False, drop_at=len(qcow2) // 2)

    image = import_url(
        api, owner, standalone, server.url("/centos.qcow2"), django_capture_on_commit_callbacks, run_jobs
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == qcow2
    assert image.replicas.count() == 1
    assert get_backend(standalone).usage().logical == len(qcow2)


def test_vmdk_from_a_url_is_staged_converted_and_stored(
    api,
    owner,
    standalone,
    disks,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    raw = disks.raw(size=4 * MiB)
    vmdk = disks.convert(raw, "vmdk").read_bytes()
    server = http_server()
    server.routes["/appliance.vmdk"] = FileRoute(vmdk, ranges=False, drop_at=len(vmdk) // 2)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/appliance.vmdk"),
        django_capture_on_commit_callbacks,
        run_jobs,
        disk_format="vmdk",
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.disk_format == "qcow2" and image.source_format == "vmdk"


def test_ftp_password_is_never_stored_shown_or_logged_in_clear(
    api,
    owner,
    standalone,
    qcow2,
    ftp_server,
    django_capture_on_commit_callbacks,
    run_jobs,
    caplog,
):
    caplog.set_level("DEBUG")
    (ftp_server.root / "centos.qcow2").write_bytes(qcow2)
    url = f"ftp://{FTP_USER}:{quote(FTP_PASSWORD, safe='')}@127.0.0.1:{ftp_server.port}/centos.qcow2"

    with django_capture_on_commit_callbacks(execute=True):
        response = api(owner, body(standalone, url))
    assert response.status_code == 201
    assert (
        FTP_PASSWORD not in response.content.decode()
        and quote(FTP_PASSWORD, safe="") not in response.content.decode()
    )
    session = UploadSession.objects.get(image_id=response.json()["id"])
    assert session.source_url == f"ftp://{FTP_USER}:***@127.0.0.1:{ftp_server.port}/centos.qcow2"
    assert session.secret_encrypted and quote(FTP_PASSWORD, safe="") not in session.secret_encrypted

    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    image = Image.objects.get(pk=response.json()["id"])
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == qcow2
    session.refresh_from_db()
    assert session.secret_encrypted == ""  # wiped once the fetch ended
    logged = " ".join(OperationLog.objects.values_list("message", flat=True))
    assert ":***@" in logged
    for text in (logged, caplog.text):
        assert FTP_PASSWORD not in text and quote(FTP_PASSWORD, safe="") not in text


def test_ftp_anonymous_import(
    api,
    owner,
    standalone,
    qcow2,
    ftp_server,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    (ftp_server.root / "centos.qcow2").write_bytes(qcow2)

    image = import_url(
        api,
        owner,
        standalone,
        f"ftp://127.0.0.1:{ftp_server.port}/centos.qcow2",
        django_capture_on_commit_callbacks,
        run_jobs,
    )
    assert image.status == Image.Status.AVAILABLE, image.error


def test_announced_length_over_the_quota_fails_before_anything_is_stored(
    api,
    owner,
    tenant,
    standalone,
    qcow2,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    Quota.objects.filter(tenant=tenant).update(max_bytes=len(qcow2) - 1)
    server = http_server()
    server.routes["/centos.qcow2"] = FileRoute(qcow2)

    image = import_url(
        api, owner, standalone, server.url("/centos.qcow2"), django_capture_on_commit_callbacks, run_jobs
    )

    assert image.status == Image.Status.FAILED
    assert "quota" in image.error
    assert not ImageReplica.objects.exists()
    assert get_backend(standalone).usage().logical == 0


def test_unannounced_length_is_cut_off_at_the_quota(
    api,
    owner,
    tenant,
    standalone,
    qcow2,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    Quota.objects.filter(tenant=tenant).update(max_bytes=2 * MiB)
    server = http_server()
    server.routes["/centos.qcow2"] = FileRoute(qcow2, length=False)

    image = import_url(
        api, owner, standalone, server.url("/centos.qcow2"), django_capture_on_commit_callbacks, run_jobs
    )

    assert image.status == Image.Status.FAILED
    assert "cut off" in image.error
    assert not ImageReplica.objects.exists()


def test_a_url_import_reads_the_free_space_without_listing_the_storage(
    api,
    owner,
    standalone,
    qcow2,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
    monkeypatch,
):
    # A storage's usage() lists every chunk it holds: seconds on a large store, before every URL import's
    # first byte. The limit of a fetch of unannounced length needs only the free space.
    from storage.backends.standalone import StandaloneBackend

    def listed(self):
        raise AssertionError("the import listed every chunk of the storage")

    monkeypatch.setattr(StandaloneBackend, "usage", listed)
    server = http_server()
    server.routes["/centos.qcow2"] = FileRoute(qcow2, length=False)

    image = import_url(
        api, owner, standalone, server.url("/centos.qcow2"), django_capture_on_commit_callbacks, run_jobs
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.size == len(qcow2)


def test_ssrf_refusal_is_a_400_naming_the_rule_and_nothing_is_created(
    api,
    owner,
    standalone,
    accept_recorder,
    settings,
):
    settings.IMPORT_ALLOWED_NETWORKS = []
    recorder = accept_recorder("127.0.0.1")

    response = api(owner, body(standalone, f"http://2130706433:{recorder.port}/centos.qcow2"))

    assert response.status_code == 400
    assert "loopback" in response.json()["url"][0]
    assert not Image.objects.exists()
    assert recorder.accepted == 0


def test_redirect_to_a_refused_address_fails_the_import_with_the_rule(
    api,
    owner,
    standalone,
    http_server,
    accept_recorder,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    elsewhere = accept_recorder("127.0.0.2")
    server = http_server()
    server.routes["/centos.qcow2"] = Redirect(f"http://127.0.0.2:{elsewhere.port}/centos.qcow2")

    image = import_url(
        api, owner, standalone, server.url("/centos.qcow2"), django_capture_on_commit_callbacks, run_jobs
    )

    assert image.status == Image.Status.FAILED
    assert "rule: loopback addresses" in image.error
    assert elsewhere.accepted == 0


@pytest.mark.parametrize("url", ["gopher://127.0.0.1:70/1", "dict://127.0.0.1:2628/d:x"])
def test_other_schemes_are_a_400(api, owner, standalone, url):
    response = api(owner, body(standalone, url))
    assert response.status_code == 400
    assert "url" in response.json()
    assert not Image.objects.exists()


def test_file_url_from_a_tenant_is_a_400(api, owner, standalone, tmp_path, settings, qcow2):
    settings.IMPORT_FILE_ROOTS = [str(tmp_path)]
    (tmp_path / "centos.qcow2").write_bytes(qcow2)

    response = api(owner, body(standalone, f"file://{tmp_path}/centos.qcow2"))

    assert response.status_code == 400
    assert "administrators" in response.json()["url"][0]


def test_file_url_from_an_administrator_under_a_root(
    api,
    admin_user,
    tenant,
    standalone,
    tmp_path,
    settings,
    qcow2,
    django_capture_on_commit_callbacks,
    run_jobs,
):
    services.membership_add(tenant=tenant, user=admin_user, role=Membership.Role.OWNER)
    root = tmp_path / "dvd"
    root.mkdir()
    (root / "centos.qcow2").write_bytes(qcow2)
    settings.IMPORT_FILE_ROOTS = [str(root)]

    outside = api(admin_user, body(standalone, f"file://{tmp_path}/elsewhere.qcow2"))
    assert outside.status_code == 400 and "IMPORT_FILE_ROOTS" in outside.json()["url"][0]

    image = import_url(
        api,
        admin_user,
        standalone,
        f"file://{root}/centos.qcow2",
        django_capture_on_commit_callbacks,
        run_jobs,
    )
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == qcow2


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_stalled_fetch(
    api,
    owner,
    standalone,
    qcow2,
    http_server,
    django_capture_on_commit_callbacks,
    run_jobs,
    settings,
):
    # The server stalls for longer than the test lasts; only a cancel noticed by the job ends the fetch.
    settings.IMPORT_STALL_TIMEOUT = 60
    server = http_server()
    route = server.routes["/centos.qcow2"] = FileRoute(qcow2, stall_at=len(qcow2) // 2)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(owner, body(standalone, server.url("/centos.qcow2")))
    image_id = response.json()["id"]

    def cancel_from_the_console():
        from django.db import OperationalError, connection

        from images.services import import_cancel

        try:
            # SQLite's shared in-memory test database answers "table is locked" instead of waiting
            # while the worker thread writes progress; a person clicking Cancel would simply retry.
            for _attempt in range(50):
                try:
                    import_cancel(image=Image.objects.get(pk=image_id), actor=owner)
                    return
                except OperationalError:
                    time.sleep(0.1)
        finally:
            connection.close()

    route.on_stall = cancel_from_the_console
    for _round in range(2):
        run_jobs()
    route.release.set()

    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.FAILED
    assert "cancelled by acme-owner" in image.error
    assert not ImageReplica.objects.exists()
    assert get_backend(standalone).usage().logical == 0
    assert len(server.requests) == 1


def wizard_data(storage, url):
    return {
        "iso": "0",
        "name": "web base",
        "kind": "system",
        "disk_format": "qcow2",
        "import_method": "url",
        "url": url,
        "os_type": "linux",
        "architecture": "x86_64",
        "boot_mode": "bios",
        "platform": "Ubuntu",
        "os_version": "16.04",
        "storage": storage.pk,
        "virtio": "on",
    }


def test_wizard_url_import_to_available_and_the_detail_page_shows_the_url_redacted(
    owner_client, standalone, qcow2, http_server, django_capture_on_commit_callbacks, run_jobs
):
    server = http_server()
    server.routes["/web.qcow2"] = RequireBasicAuth(qcow2)
    url = server.url("/web.qcow2").replace("http://", "http://carol:s3cr%3Aet@")

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/images/import/", wizard_data(standalone, url))
    assert response.status_code == 302
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    image = Image.objects.get()
    assert image.status == Image.Status.AVAILABLE, image.error
    html = owner_client.get(f"/images/{image.pk}/").content.decode()
    html += owner_client.get(f"/images/{image.pk}/summary/").content.decode()
    assert server.url("/web.qcow2").replace("http://", "http://carol:***@") in html
    assert "s3cr" not in html


def test_wizard_shows_a_refused_url_next_to_its_field(owner_client, standalone, settings):
    settings.IMPORT_ALLOWED_NETWORKS = []
    response = owner_client.post(
        "/images/import/", wizard_data(standalone, "http://[::ffff:127.0.0.1]/x.qcow2")
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-error-for="url"' in html and "loopback" in html
    assert not Image.objects.exists()


def test_a_slow_fetch_shows_bytes_total_and_speed_while_it_runs(
    transactional_db, api, owner, standalone, qcow2, http_server, django_capture_on_commit_callbacks, run_jobs
):
    # 3 MiB in 128 KiB pieces 0.1 s apart (about 1.3 MB/s), then a stall while the console is looked at.
    server = http_server()
    half = len(qcow2) // 2
    route = server.routes["/slow.qcow2"] = FileRoute(qcow2, stall_at=half, pace=(128 * 1024, 0.1))
    with django_capture_on_commit_callbacks(execute=True):
        response = api(owner, body(standalone, server.url("/slow.qcow2")))
    image_id = response.json()["id"]
    seen = {}

    def look_while_stalled():
        from django.db import connection
        from django.test import Client

        try:
            seen["row"] = Image.objects.values("bytes_done", "bytes_total", "bytes_per_second").get(
                pk=image_id
            )
            console = Client()
            console.force_login(owner)
            seen["page"] = console.get(f"/images/{image_id}/").content.decode()
            seen["list_row"] = console.get(reverse("images:row", args=[image_id])).content.decode()
        except Exception as error:
            seen["error"] = repr(error)
        finally:
            connection.close()
            route.release.set()

    route.on_stall = look_while_stalled
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    assert "error" not in seen, seen
    row = seen["row"]
    assert row["bytes_total"] == len(qcow2)
    assert 0 < row["bytes_done"] <= half
    # The rate is the server's pace (~1.3 MB/s), not the loopback's gigabytes per second.
    assert 300_000 < row["bytes_per_second"] < 3_000_000
    assert 'data-testid="image-rate"' in seen["page"] and "/s</span>" in seen["page"]
    assert 'data-testid="image-rate"' in seen["list_row"]  # the list's row shows it too
    assert Image.objects.get(pk=image_id).status == Image.Status.AVAILABLE
