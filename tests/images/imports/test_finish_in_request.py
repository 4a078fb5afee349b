"""An upload stored as it arrived is made available by the request that sends its last byte: the answer
already shows it available, no job is queued for it, and the reconciler leaves that request alone (when
its process dies first, the reconciler finishes the image: test_cancel_reconcile)."""

import base64
import hashlib
import subprocess
from urllib.parse import urlsplit

import django_rq
import pytest

from images.models import Image
from images.services.imports import REQUEST_JOB_PREFIX
from images.services.progress import Heartbeat
from images.services.receiving import upload_lock
from images.services.reconcile import reconcile
from storage.backends import get_backend

from .conftest import MiB, send_file


@pytest.fixture
def auth(token):
    return lambda user: {"HTTP_AUTHORIZATION": f"Token {token(user)}"}


def queued(*names):
    return sum(django_rq.get_queue(name).count for name in names)


def put(client, headers, image, data):
    return client.put(
        f"/api/v1/images/{image.pk}/file", data=data, content_type="application/octet-stream", **headers
    )


@pytest.fixture
def put_new(client, owner, auth, standalone, disks, start_import, django_capture_on_commit_callbacks):
    """PUT a new 4 MiB image of `fmt`: (the image, its bytes, the answer's body)."""

    def run(fmt):
        data = disks.convert(disks.raw(size=4 * MiB), fmt).read_bytes()
        image = start_import(standalone, fmt)
        with django_capture_on_commit_callbacks(execute=True):
            response = put(client, auth(owner), image, data)
        assert response.status_code == 202, response.content
        return image, data, response.json()

    return run


def test_a_put_answers_with_the_image_available_and_queues_nothing(put_new, rq_redis):
    image, data, body = put_new("qcow2")
    assert body["status"] == "available", body["error"]
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["virtual_size"] == 4 * MiB
    assert queued("imports", "convert") == 0
    image.refresh_from_db()
    assert image.job_id.startswith(REQUEST_JOB_PREFIX)


def test_the_finish_checks_the_head_the_request_holds_without_writing_it_to_staging(
    put_new, monkeypatch, caplog
):
    """The 4 MiB head went to the staging area at the last commit and was read back by the finish; the
    request that finishes the image hands it over in memory (and logs when the image is available)."""
    from images.services.receiving import ImportReceiver

    def no_staging(receiver):
        raise AssertionError("the head was written to staging")

    monkeypatch.setattr(ImportReceiver, "_write_head", no_staging)
    with caplog.at_level("INFO", logger="images.pipeline"):
        image, _data, body = put_new("qcow2")
    assert body["status"] == "available", body["error"]
    assert body["virtual_size"] == 4 * MiB
    (line,) = [message for message in caplog.messages if message.startswith(f"import {image.pk} ")]
    assert line.startswith(f"import {image.pk} available: stored as it arrived (qcow2)")


def test_a_put_of_a_file_to_convert_still_goes_to_its_job(
    put_new, run_jobs, django_capture_on_commit_callbacks
):
    image, _data, body = put_new("vmdk")
    assert body["stage"] == "inspecting"
    assert queued("convert") == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error


def too_large(disks):
    """A qcow2 of 30 GB virtual size: refused by the finish (qemu-img info) for a 20 GB target size."""
    path = disks.root / "big.qcow2"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "30G"], check=True)
    return path.read_bytes()


@pytest.mark.parametrize("protocol", ["put", "tus"])
def test_a_file_the_finish_refuses_is_refused_in_the_answer(
    protocol,
    client,
    owner,
    auth,
    standalone,
    disks,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    """As a file refused while it arrives: a 422 that says why (the browser shows it on the upload's
    panel, with Import again and Delete), the image failed, and what it stored removed."""
    image = start_import(standalone, "qcow2", target_size=20 * 1024**3)
    data = too_large(disks)
    headers = auth(owner)
    with django_capture_on_commit_callbacks(execute=True):
        if protocol == "put":
            response = put(client, headers, image, data)
        else:
            tus = {"HTTP_TUS_RESUMABLE": "1.0.0", **headers}
            created = client.post(
                "/api/v1/uploads/",
                HTTP_UPLOAD_LENGTH=str(len(data)),
                HTTP_UPLOAD_METADATA="image_id " + base64.b64encode(str(image.pk).encode()).decode(),
                **tus,
            )
            assert created.status_code == 201, created.content
            response = client.patch(
                urlsplit(created["Location"]).path,
                data=data,
                content_type="application/offset+octet-stream",
                HTTP_UPLOAD_OFFSET="0",
                **tus,
            )
    assert response.status_code == 422, response.content
    assert "virtual size is 30.0\xa0GB, more than the target size of 20.0\xa0GB" in response.json()["detail"]
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "virtual size" in image.error
    with django_capture_on_commit_callbacks(execute=True):
        assert run_jobs() == 0  # the cleanup: what it stored goes
    assert not image.replicas.exists()
    assert get_backend(standalone).usage().logical == 0


def inspecting_with_a_request_job(image, path):
    """The state a request leaves when its process dies between the last byte and the finish."""
    send_file(image, path, enqueue=False)
    job_id = REQUEST_JOB_PREFIX + "0" * 32
    Image.objects.filter(pk=image.pk).update(job_id=job_id)
    image.refresh_from_db()
    assert image.stage == "inspecting"
    return image


def test_the_reconciler_leaves_a_request_that_is_finishing_alone(standalone, disks, start_import, rq_redis):
    image = inspecting_with_a_request_job(
        start_import(standalone, "qcow2"), disks.convert(disks.raw(), "qcow2")
    )
    with upload_lock(image.pk):  # the request still holds the upload's lock
        report = reconcile()
    assert not report.resumed and not report.failed
    with Heartbeat(image.pk):  # or its finish beats (past the lock's minute)
        report = reconcile()
    assert not report.resumed and not report.failed
    image.refresh_from_db()
    assert image.status == Image.Status.UPLOADING and image.stage == "inspecting"
    assert queued("imports") == 0


def test_a_finish_that_ends_while_the_reconciler_looks_is_not_enqueued_again(
    standalone, disks, start_import, rq_redis, monkeypatch
):
    """The request makes the image available between the reconciler's query and its decision: nothing is
    enqueued (a second finish would race the first, and the one that lost would delete the replica)."""
    from images.services import pipeline
    from images.services import reconcile as reconcile_module

    image = inspecting_with_a_request_job(
        start_import(standalone, "qcow2"), disks.convert(disks.raw(), "qcow2")
    )

    def finished_meanwhile(image_id):
        pipeline.import_finish(image_id=image_id)
        return reconcile_module.MISSING

    monkeypatch.setattr(reconcile_module, "request_liveness", finished_meanwhile)
    report = reconcile()
    assert not report.resumed and not report.failed
    assert queued("imports") == 0
    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.replicas.get().state == "ready"
