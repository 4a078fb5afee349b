"""Choosing the store: glanceclient and openstacksdk name it (`X-Image-Meta-Store`, or `stores` in an
import) when they send the data, not when they create the image; a queued image goes there."""

import json

from django.utils import translation

from images.models import Image, ImageReplica
from tenants.models import OperationLog
from tenants.oplog import render_message

from .conftest import V2, MiB


def create(glance, **headers):
    response = glance.post(
        f"{V2}/images",
        json.dumps({"name": "stored", "disk_format": "qcow2", "container_format": "bare"}),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def settle(run_jobs, capture):
    for _round in range(3):
        with capture(execute=True):
            run_jobs()


def test_info_stores_lists_both_the_first_by_default(glance, standalone, second):
    stores = glance.get(f"{V2}/info/stores").json()["stores"]
    assert [s["id"] for s in stores] == [str(standalone.pk), str(second.pk)]
    assert stores[0]["default"] == "true" and "default" not in stores[1]
    assert Image.objects.get(pk=create(glance)).storage == standalone


def test_the_store_named_on_create_upload_or_import_is_used(
    glance, standalone, second, disks, run_jobs, django_capture_on_commit_callbacks
):
    data = disks.convert(disks.raw(size=3 * MiB), "qcow2").read_bytes()
    on_create = create(glance, HTTP_X_IMAGE_META_STORE=str(second.pk))
    assert Image.objects.get(pk=on_create).storage == second
    # As `glance image-create --store ID --file F` does: the header comes with the data.
    on_upload = create(glance)
    with django_capture_on_commit_callbacks(execute=True):
        response = glance.put(f"{V2}/images/{on_upload}/file", data, content_type="application/octet-stream",
                              HTTP_X_IMAGE_META_STORE=str(second.pk))  # fmt: skip
    assert response.status_code == 204, response.content
    # glance-direct with `stores` in the import's body.
    on_import = create(glance)
    glance.put(f"{V2}/images/{on_import}/stage", data, content_type="application/octet-stream")
    body = {"method": {"name": "glance-direct"}, "stores": [str(second.pk)]}
    with django_capture_on_commit_callbacks(execute=True):
        response = glance.post(
            f"{V2}/images/{on_import}/import", json.dumps(body), content_type="application/json"
        )
    assert response.status_code == 202, response.content
    settle(run_jobs, django_capture_on_commit_callbacks)
    # The move is in the operation log, worded for each reader.
    entry = OperationLog.objects.get(action="image.update", target_id=str(on_upload))
    assert (
        render_message(entry.message_code, entry.message_params)
        == f"Changed image storage: {standalone.name} → {second.name}"
    )
    with translation.override("zh-hans"):
        assert "image storage" not in render_message(entry.message_code, entry.message_params)
    for image_id in (on_upload, on_import):
        shown = glance.get(f"{V2}/images/{image_id}").json()
        assert shown["status"] == "active" and shown["stores"] == str(second.pk)
        assert list(ImageReplica.objects.filter(image_id=image_id).values_list("storage", flat=True)) == [
            second.pk
        ]


def test_an_unknown_store_or_a_late_change_is_refused(glance, standalone, second, disks, run_jobs,
                                                      django_capture_on_commit_callbacks):  # fmt: skip
    data = disks.convert(disks.raw(size=2 * MiB), "qcow2").read_bytes()
    image_id = create(glance)
    refused = glance.put(f"{V2}/images/{image_id}/file", data, content_type="application/octet-stream",
                         HTTP_X_IMAGE_META_STORE="nowhere")  # fmt: skip
    assert refused.status_code == 400
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "queued"
    with django_capture_on_commit_callbacks(execute=True):
        glance.put(f"{V2}/images/{image_id}/file", data, content_type="application/octet-stream")
    settle(run_jobs, django_capture_on_commit_callbacks)
    too_late = glance.post(f"{V2}/images/{image_id}/import", json.dumps({"method": {"name": "glance-direct"},
                           "stores": [str(second.pk)]}), content_type="application/json")  # fmt: skip
    assert too_late.status_code == 409
    assert Image.objects.get(pk=image_id).storage == standalone
    two = {"method": {"name": "web-download", "uri": "http://example.com/x"}, "stores": ["1", "2"]}
    assert glance.post(f"{V2}/images/{create(glance)}/import", json.dumps(two),
                       content_type="application/json").status_code == 400  # fmt: skip
