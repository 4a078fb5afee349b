"""Every hostile file of the import tests (tests/images/imports/test_hostile.py) is refused through the
Image API too: the same test bodies, with the file sent by `POST /v2/images` and `PUT .../file`."""

import inspect
import json

import pytest

from images.models import Image, ImageReplica
from storage.backends import get_backend

from ..images.imports import test_hostile as hostile
from .conftest import V2

# Cases about what the console's wizard lets a user give (a target size, an expected SHA256), which
# the Image API has no field for; and the LUKS cases, which are imports that succeed.
NOT_FILES = {
    "test_qcow2_whose_virtual_size_passes_the_target",
    "test_sha256_mismatch_shows_both_values",
    "test_luks_encrypted_qcow2_is_marked_encrypted",
    "test_raw_luks_volume_is_marked_encrypted",
}
CASES = []
for name, function in inspect.getmembers(hostile, inspect.isfunction):
    if not name.startswith("test_") or name in NOT_FILES:
        continue
    marks = getattr(function, "pytestmark", [])
    params = next((m.args for m in marks if m.name == "parametrize"), None)
    if params:
        CASES += [pytest.param(function, {params[0]: value}, id=f"{name}[{value}]") for value in params[1]]
    else:
        CASES.append(pytest.param(function, {}, id=name))


@pytest.fixture
def refused_via_api(glance, standalone, run_jobs, django_capture_on_commit_callbacks, settings):
    def run(path, fmt, **fields):
        assert not fields
        body = {"name": "hostile", "disk_format": fmt, "container_format": "bare"}
        if fmt == "ova":
            body.update(disk_format="vmdk", container_format="ova")
        created = glance.post(f"{V2}/images", json.dumps(body), content_type="application/json")
        assert created.status_code == 201, created.content
        image_id = created.json()["id"]
        with django_capture_on_commit_callbacks(execute=True):
            response = glance.put(
                f"{V2}/images/{image_id}/file", path.read_bytes(), content_type="application/octet-stream"
            )
        assert response.status_code in (204, 400), response.content
        for _round in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                run_jobs()
        shown = glance.get(f"{V2}/images/{image_id}").json()
        assert shown["status"] == "killed"
        assert glance.get(f"{V2}/images/{image_id}/file").status_code == 204
        image = Image.objects.get(pk=image_id)
        assert not ImageReplica.objects.filter(image=image).exists()
        assert get_backend(standalone).usage().logical == 0
        assert not (settings.STAGING_ROOT / str(image.pk)).exists()
        return image

    return run


@pytest.mark.parametrize(("case", "params"), CASES)
def test_refused_through_the_image_api(case, params, refused_via_api, disks):
    arguments = {"refused": refused_via_api, "disks": disks, **params}
    case(**{name: arguments[name] for name in inspect.signature(case).parameters})
