"""Fixtures of the recycle bin's tests: image rows in any status, real imports onto real storages, the
deletion policy."""

import itertools
from decimal import Decimal

import pytest

from images.models import Image
from recyclebin.models import DeletionPolicy, TenantDeletionPolicy
from tests.images.imports.conftest import (  # noqa: F401  (fixtures shared with the import tests)
    disks,
    distributed,
    standalone,
    start_import,
)

_counter = itertools.count(1)


@pytest.fixture
def make_image(db):
    def make(tenant, **fields):
        n = next(_counter)
        status = fields.pop("status", Image.Status.AVAILABLE)
        values = {
            "name": f"image-{n}",
            "disk_format": Image.DiskFormat.QCOW2,
            "status": status,
            "stage": "",
            "progress": 100 if status == Image.Status.AVAILABLE else 0,
            "size": 1024 * n,
            "platform": "CentOS",
            "os_version": "7.9",
        }
        values.update(fields)
        return Image.objects.create(tenant=tenant, **values)

    return make


@pytest.fixture
def set_policy(db):
    """set_policy("delayed", days=3) for the platform, or tenant=... for a tenant's own policy."""

    def set_(mode, *, days=3, tenant=None):
        values = {"mode": mode, "retention_days": Decimal(str(days))}
        if tenant is None:
            DeletionPolicy.objects.update_or_create(pk=1, defaults=values)
        else:
            TenantDeletionPolicy.objects.update_or_create(tenant=tenant, defaults=values)

    return set_
