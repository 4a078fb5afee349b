import itertools

import pytest

from images.models import Image

_counter = itertools.count(1)


@pytest.fixture
def make_image(db):
    """An image row in a given state, as the import pipeline would have left it."""

    def make(tenant, **fields):
        n = next(_counter)
        status = fields.pop("status", Image.Status.AVAILABLE)
        values = {
            "name": f"image-{n}",
            "disk_format": Image.DiskFormat.QCOW2,
            "status": status,
            "stage": Image.Stage.QUEUED if status in Image.TRANSITIONAL else "",
            "progress": 100 if status == Image.Status.AVAILABLE else 0,
            "size": 1024 * n,
            "platform": "CentOS",
            "os_version": "7.9",
        }
        values.update(fields)
        shared_with = values.pop("shared_with", ())
        image = Image.objects.create(tenant=tenant, **values)
        if shared_with:
            image.shared_with.set(shared_with, through_defaults={"status": "accepted"})
        return image

    return make
