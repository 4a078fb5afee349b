"""Fixtures of the checksum tests: the compressed-image and URL-import fixtures, a PUT helper."""

import pytest

from tenants import services
from tests.images.compressed.conftest import compress, qcow2_image  # noqa: F401
from tests.images.fetch.conftest import fetch_settings, http_server  # noqa: F401
from tests.images.fetch.test_url_import import api  # noqa: F401
from tests.images.imports.conftest import Disks, MiB, disks, distributed, standalone, start_import  # noqa: F401


@pytest.fixture
def auth(db):
    def make(user):
        _token, key = services.api_token_create(user=user)
        return {"HTTP_AUTHORIZATION": f"Token {key}"}

    return make


def put(client, headers, image, data, django_capture_on_commit_callbacks, run_jobs):
    """PUT the bytes, then run the jobs (decompress, finish, cleanup) to the end."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.put(
            f"/api/v1/images/{image.pk}/file", data=data, content_type="application/octet-stream", **headers
        )
    assert response.status_code in (202, 422), response.content
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert run_jobs() == 0
    image.refresh_from_db()
    return image
