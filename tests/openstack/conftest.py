"""Fixtures of the OpenStack API tests: an import storage, tokens, and a client that sends X-Auth-Token."""

import uuid

import pytest
from django.test import Client

from storage.models import ImageStorage
from tenants import services
from tenants.models import Membership

from ..images.fetch.conftest import fetch_settings, http_server  # noqa: F401  (loopback HTTP server)
from ..images.imports.conftest import Disks  # noqa: F401  (qemu-img disk builders)

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fresh_usage_cache():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def standalone(db, tmp_path):
    (tmp_path / "store").mkdir()
    return ImageStorage.objects.create(
        name=f"local-{uuid.uuid4().hex[:6]}",
        kind=ImageStorage.Kind.STANDALONE,
        mount_path=str(tmp_path / "store"),
        reserved_bytes=0,
        upload_concurrency=2,
    )


@pytest.fixture
def second(standalone, tmp_path):
    """A second import storage, listed after `standalone`."""
    (tmp_path / "store2").mkdir()
    return ImageStorage.objects.create(
        name=f"zz-{uuid.uuid4().hex[:6]}",
        kind=ImageStorage.Kind.STANDALONE,
        mount_path=str(tmp_path / "store2"),
        reserved_bytes=0,
        upload_concurrency=2,
    )


@pytest.fixture
def disks(tmp_path):
    return Disks(tmp_path / "disks")


def token_client(user) -> Client:
    _token, key = services.api_token_create(user=user)
    return Client(HTTP_X_AUTH_TOKEN=key)


@pytest.fixture
def glance(owner, standalone):
    """The tenant owner's Image API client (console API token in X-Auth-Token)."""
    return token_client(owner)


@pytest.fixture
def other_glance(other_tenant, standalone):
    return token_client(other_tenant.memberships.get(role=Membership.Role.OWNER).user)


@pytest.fixture
def viewer_glance(subaccount, standalone):
    return token_client(subaccount)


PATCH = "application/openstack-images-v2.1-json-patch"
V2 = "/openstack/image/v2"
