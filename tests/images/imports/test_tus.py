"""The tus 1.0 endpoint: the protocol with Django's client, and real uploads over HTTP with tuspy,
interrupted halfway and resumed."""

import base64
import hashlib
import http.client
import time
from email.utils import format_datetime
from urllib.parse import urlsplit

import pytest

from images.models import Image

from .conftest import MiB, stored_bytes

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def metadata(**values) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def test_protocol_with_the_test_client(
    client, owner, token, standalone, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    headers = {"HTTP_AUTHORIZATION": f"Token {token(owner)}", **TUS}
    qcow2 = disks.convert(disks.raw(size=3 * MiB), "qcow2")
    data = qcow2.read_bytes()
    image = start_import(standalone, "qcow2")

    options = client.options("/api/v1/uploads/", **headers)
    assert options.status_code == 204
    assert options["Tus-Version"] == "1.0.0"
    assert set(options["Tus-Extension"].split(",")) == {"creation", "termination", "expiration"}

    assert (
        client.post("/api/v1/uploads/", HTTP_AUTHORIZATION=headers["HTTP_AUTHORIZATION"]).status_code == 412
    )
    created = client.post(
        "/api/v1/uploads/",
        HTTP_UPLOAD_LENGTH=str(len(data)),
        HTTP_UPLOAD_METADATA=metadata(image_id=str(image.pk), filename="disk.qcow2"),
        **headers,
    )
    assert created.status_code == 201, created.content
    assert created["Tus-Resumable"] == "1.0.0" and "Upload-Expires" in created
    location = urlsplit(created["Location"]).path

    head = client.head(location, **headers)
    assert head["Upload-Offset"] == "0" and head["Upload-Length"] == str(len(data))
    half = len(data) // 2
    patch = client.patch(
        location,
        data[:half],
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET="0",
        **headers,
    )
    assert patch.status_code == 204 and patch["Upload-Offset"] == str(half)
    stale = client.patch(
        location, data[:10], content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET="0", **headers
    )
    assert stale.status_code == 409 and stale.json()["offset"] == half
    wrong_type = client.patch(
        location,
        data[half:],
        content_type="application/octet-stream",
        HTTP_UPLOAD_OFFSET=str(half),
        **headers,
    )
    assert wrong_type.status_code == 415
    with django_capture_on_commit_callbacks(execute=True):
        last = client.patch(
            location,
            data[half:],
            content_type="application/offset+octet-stream",
            HTTP_UPLOAD_OFFSET=str(half),
            **headers,
        )
    assert last.status_code == 204 and last["Upload-Offset"] == str(len(data))
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == data
    assert image.upload.filename == "disk.qcow2"


def test_a_resumed_patch_keeps_the_progress_shown_and_sets_the_expiry(
    client, owner, token, standalone, disks, start_import
):
    """The next PATCH of an upload continues the row's progress (it never shows 0% in between), writes it
    at most once a second (an upload sent in many short PATCHes costs no row update for each), and answers
    with the expiry its commit set."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from images.models import UploadSession

    headers = {"HTTP_AUTHORIZATION": f"Token {token(owner)}", **TUS}
    data = disks.convert(disks.raw(size=12 * MiB), "qcow2").read_bytes()
    image = start_import(standalone, "qcow2")
    created = client.post(
        "/api/v1/uploads/",
        HTTP_UPLOAD_LENGTH=str(len(data)),
        HTTP_UPLOAD_METADATA=metadata(image_id=str(image.pk)),
        **headers,
    )
    location = urlsplit(created["Location"]).path
    step = 2 * MiB
    assert len(data) > 3 * step
    for offset, shown in ((0, 0), (step, 0), (2 * step, 2 * step)):
        if offset == 2 * step:  # the row's last report is more than a second old now
            Image.objects.filter(pk=image.pk).update(updated_at=timezone.now() - timedelta(seconds=2))
        with CaptureQueriesContext(connection) as queries:
            response = client.patch(
                location,
                data[offset : offset + step],
                content_type="application/offset+octet-stream",
                HTTP_UPLOAD_OFFSET=str(offset),
                **headers,
            )
        assert response.status_code == 204
        image.refresh_from_db()
        assert (image.stage, image.bytes_done) == (Image.Stage.RECEIVING, shown)
        session = UploadSession.objects.get(image=image)
        assert response["Upload-Expires"] == format_datetime(session.expires_at, usegmt=True)
        progress_writes = [
            query["sql"]
            for query in queries.captured_queries
            if query["sql"].startswith('UPDATE "images_image"')
        ]
        if offset == step:
            assert progress_writes == []  # within a second of the row's last report
        if offset == 2 * step:
            assert len(progress_writes) == 1 and '"progress" = 0' not in progress_writes[0], progress_writes
            assert image.progress == 2 * step * 100 // len(data)
            # The rate since the row's last report (2 * step bytes in about 2 s), not unknown: an upload
            # in short PATCHes shows its speed too.
            assert 0.6 * step < image.bytes_per_second < 1.1 * step


def test_creation_checks_the_quota_and_the_owner(
    client, owner, other_tenant, token, standalone, start_import, tenant
):
    from tenants.models import Quota

    image = start_import(standalone, "raw")
    other = {"HTTP_AUTHORIZATION": f"Token {token(other_tenant.memberships.get().user)}", **TUS}
    response = client.post(
        "/api/v1/uploads/",
        HTTP_UPLOAD_LENGTH="10",
        HTTP_UPLOAD_METADATA=metadata(image_id=str(image.pk)),
        **other,
    )
    assert response.status_code == 404

    Quota.objects.filter(tenant=tenant).update(max_bytes=MiB)
    mine = {"HTTP_AUTHORIZATION": f"Token {token(owner)}", **TUS}
    response = client.post(
        "/api/v1/uploads/",
        HTTP_UPLOAD_LENGTH=str(2 * MiB),
        HTTP_UPLOAD_METADATA=metadata(image_id=str(image.pk)),
        **mine,
    )
    assert response.status_code == 413 and "quota" in response.json()["detail"]


def test_termination_cancels_the_import(client, owner, token, standalone, start_import):
    image = start_import(standalone, "raw")
    headers = {"HTTP_AUTHORIZATION": f"Token {token(owner)}", **TUS}
    created = client.post(
        "/api/v1/uploads/",
        HTTP_UPLOAD_LENGTH="1024",
        HTTP_UPLOAD_METADATA=metadata(image_id=str(image.pk)),
        **headers,
    )
    location = urlsplit(created["Location"]).path
    assert client.delete(location, **headers).status_code == 204
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "cancelled" in image.error
    assert client.head(location, **headers).status_code == 410


@pytest.mark.django_db(transaction=True)
def test_tuspy_upload_interrupted_halfway_and_resumed(
    live_server, owner, token, standalone, disks, start_import, run_jobs
):
    from tusclient import client as tus_client

    key = token(owner)
    vmdk = disks.convert(disks.raw(size=12 * MiB), "vmdk")
    data = vmdk.read_bytes()
    image = start_import(standalone, "vmdk")
    client = tus_client.TusClient(
        f"{live_server.url}/api/v1/uploads/", headers={"Authorization": f"Token {key}"}
    )

    half = len(data) // 2
    first = client.uploader(
        file_path=str(vmdk), chunk_size=half, metadata={"image_id": str(image.pk), "filename": vmdk.name}
    )
    first.upload_chunk()  # then the client goes away
    assert first.offset == half

    # A new client (after a reload, another process...) finds the upload by its URL and continues.
    again = tus_client.TusClient(
        f"{live_server.url}/api/v1/uploads/", headers={"Authorization": f"Token {key}"}
    )
    resumed = again.uploader(file_path=str(vmdk), url=first.url, chunk_size=4 * MiB)
    assert resumed.get_offset() == half
    resumed.upload()
    assert resumed.offset == len(data)

    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.upload.received_sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_a_dropped_connection_keeps_what_arrived(
    live_server, owner, token, tus_uploader, standalone, disks, start_import
):
    """A PATCH whose connection drops in the middle of its body: HEAD then says where to continue."""
    key = token(owner)
    qcow2 = disks.convert(disks.raw(size=8 * MiB), "qcow2")
    data = qcow2.read_bytes()
    image = start_import(standalone, "qcow2")
    uploader = tus_uploader(qcow2, image, chunk_size=len(data))
    uploader.set_url(uploader.create_url())
    path = urlsplit(uploader.url).path
    sent = 5 * MiB + 12345

    host = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    connection.putrequest("PATCH", path)
    for name, value in {
        "Authorization": f"Token {key}",
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(len(data)),
    }.items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(data[:sent])
    connection.sock.close()  # the network drops

    def offset():
        return uploader.get_offset()

    deadline = time.monotonic() + 30
    while True:
        try:
            if offset() == sent:
                break
        except Exception:  # noqa: BLE001 - 423 while the server still holds the dropped request
            pass
        assert time.monotonic() < deadline, "the server did not keep what arrived"
        time.sleep(0.1)
    uploader.offset = sent
    uploader.upload()
    image.refresh_from_db()
    assert image.upload.offset == len(data)
    assert image.status == Image.Status.AVAILABLE, image.error  # the last PATCH finished it
    # Found again from its URL (a reload, a second client), the upload says it is complete.
    again = tus_uploader(qcow2, image, chunk_size=len(data))
    again.set_url(uploader.url)
    assert again.get_offset() == len(data)


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk"])
def test_an_upload_in_many_patches_is_never_read_again(
    fmt, tus_uploader, standalone, disks, start_import, run_jobs, caplog
):
    """A client that sends its file in many PATCHes (tus-js-client with chunkSize, behind a proxy's body
    limit) costs one pass over the bytes: each request continues the previous one's hashes and writer."""
    from images.services.receiving import live_forget

    live_forget()
    path = disks.convert(disks.raw(size=12 * MiB), fmt)
    data = path.read_bytes()
    image = start_import(standalone, fmt)
    uploader = tus_uploader(path, image, chunk_size=MiB + 4097)
    with caplog.at_level("INFO", logger="images.receiving"):
        uploader.upload()
    assert uploader.offset == len(data)
    assert "re-reading" not in caplog.text

    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.upload.received_sha256 == hashlib.sha256(data).hexdigest()
    if fmt == "qcow2":
        assert stored_bytes(image) == data
        assert image.md5 == hashlib.md5(data).hexdigest()


def test_each_patch_leaves_a_readable_prefix_and_another_process_can_continue(
    tus_uploader, standalone, disks, start_import, run_jobs, caplog
):
    """What a PATCH acknowledged is stored (the checkpoint is a replica of the prefix); a request that
    lands in a process without the live state (here: forgotten) continues from the receive state kept
    with the offset: only the partly filled last storage chunk is read back, never the prefix."""
    from images.models import ImageReplica
    from images.services.receiving import live_forget
    from storage.backends import get_backend
    from storage.backends.standalone import CHUNK_SIZE

    qcow2 = disks.convert(disks.raw(size=12 * MiB), "qcow2")
    data = qcow2.read_bytes()
    image = start_import(standalone, "qcow2")
    uploader = tus_uploader(qcow2, image, chunk_size=5 * MiB + 123)
    uploader.upload_chunk()
    prefix = uploader.offset
    replica = ImageReplica.objects.get(image=image)
    stored = b"".join(get_backend(standalone).read_range(replica.key))
    assert stored == data[:prefix]

    live_forget(image.pk)
    with caplog.at_level("INFO", logger="images.receiving"):
        uploader.upload_chunk()
    assert "re-reading" not in caplog.text
    image.upload.refresh_from_db()
    assert image.upload.bytes_reread == prefix % CHUNK_SIZE  # the partial chunk only

    live_forget(image.pk)
    uploader.upload()
    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == data
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.md5 == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk"])
def test_without_a_kept_state_the_next_request_reads_the_prefix_again(
    fmt, tus_uploader, standalone, disks, start_import, run_jobs, caplog
):
    """A row whose receive state is missing (written by an older version, or where hash midstates cannot
    be kept) still resumes: the prefix is read again to rebuild hashes, writer and inspector."""
    from images.models import UploadSession
    from images.services.receiving import live_forget

    path = disks.convert(disks.raw(size=12 * MiB), fmt)
    data = path.read_bytes()
    image = start_import(standalone, fmt)
    uploader = tus_uploader(path, image, chunk_size=5 * MiB + 123)
    uploader.upload_chunk()
    prefix = uploader.offset
    live_forget(image.pk)
    UploadSession.objects.filter(image=image).update(receive_state=None)
    with caplog.at_level("INFO", logger="images.receiving"):
        uploader.upload()
    assert f"re-reading {prefix} bytes" in caplog.text
    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.upload.bytes_reread == prefix
    assert image.upload.received_sha256 == hashlib.sha256(data).hexdigest()


def test_a_live_state_that_does_not_match_the_stored_prefix_is_not_used(
    tus_uploader, standalone, disks, start_import, run_jobs, caplog
):
    """If the replica the live state continues is not the one the database names (it was replaced
    meanwhile), the next request does not use it: it continues from the state kept with the offset."""
    from images.models import ImageReplica
    from images.services import receiving

    qcow2 = disks.convert(disks.raw(size=12 * MiB), "qcow2")
    data = qcow2.read_bytes()
    image = start_import(standalone, "qcow2")
    uploader = tus_uploader(qcow2, image, chunk_size=5 * MiB)
    uploader.upload_chunk()
    replica = ImageReplica.objects.get(image=image)
    receiving._live[image.pk].key = "somewhere-else"  # as if another process had committed since
    with caplog.at_level("INFO", logger="images.receiving"):
        uploader.upload()
    assert "re-reading" not in caplog.text
    assert image.pk not in receiving._live

    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert stored_bytes(image) == data
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert replica.key != image.replicas.get().key


def test_on_s3_each_patch_reads_what_was_received_again_and_counts_it(
    tus_uploader, distributed, disks, start_import, run_jobs
):
    """An S3 writer cannot be continued across requests (each PATCH completes an object): the next PATCH
    reads the prefix again, as before receive states were kept, and the row counts those bytes."""
    qcow2 = disks.convert(disks.raw(size=12 * MiB), "qcow2")
    data = qcow2.read_bytes()
    image = start_import(distributed, "qcow2")
    uploader = tus_uploader(qcow2, image, chunk_size=5 * MiB)
    uploader.upload()
    assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    patches = -(-len(data) // (5 * MiB))
    assert image.upload.bytes_reread == sum(index * 5 * MiB for index in range(patches))
