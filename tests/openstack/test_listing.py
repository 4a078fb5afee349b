"""`GET /v2/images`: each of Glance's filters narrows the list (each assertion fails if its filter is
ignored), `changes-since`, and free-form property filters that are names, never query lookups."""

from datetime import timedelta

import pytest
from django.utils import timezone

from images.models import Image

from .conftest import V2


def make(tenant, name, **fields):
    fields = {"disk_format": "qcow2", "status": "available", "stage": "", "size": 1000, **fields}
    return Image.objects.create(tenant=tenant, name=name, **fields)


def names(client, query):
    response = client.get(f"{V2}/images?{query}")
    assert response.status_code == 200, response.content
    return sorted(image["name"] for image in response.json()["images"])


@pytest.fixture
def images(tenant, other_tenant):
    now = timezone.now()
    made = {
        "small": make(tenant, "small", size=10, properties={"os_distro": "ubuntu"}),
        "big": make(tenant, "big", size=10_000, disk_format="raw", protected=True, labels=["gold"]),
        "ova": make(tenant, "ova", source_format="ova", properties={"os_distro": "debian"}),
        "off": make(tenant, "off", enabled=False),
        "theirs": make(other_tenant, "theirs", sharing="global"),
    }
    # Spread the times so the time filters have something to tell apart.
    for offset, key in enumerate(("small", "big", "ova", "off")):
        moment = now - timedelta(days=10 - offset)
        Image.objects.filter(pk=made[key].pk).update(created_at=moment, updated_at=moment)
    Image.objects.filter(pk=made["theirs"].pk).update(created_at=now, updated_at=now)
    return made


def test_each_filter_narrows_the_list(glance, images, other_tenant):
    assert names(glance, "") == ["big", "off", "ova", "small", "theirs"]
    assert names(glance, "visibility=public") == ["theirs"]
    assert names(glance, "visibility=private") == ["big", "off", "ova", "small"]
    assert names(glance, "visibility=community") == []
    assert names(glance, f"owner={other_tenant.pk}") == ["theirs"]
    assert names(glance, "disk_format=raw") == ["big"]
    assert names(glance, "disk_format=in:raw,qcow2") == ["big", "off", "ova", "small", "theirs"]
    assert names(glance, "container_format=ova") == ["ova"]
    assert names(glance, "container_format=bare&visibility=private") == ["big", "off", "small"]
    assert names(glance, "size_min=100&size_max=5000") == ["off", "ova", "theirs"]
    assert names(glance, "protected=true") == ["big"]
    assert names(glance, "status=deactivated") == ["off"]
    assert names(glance, "name=in:small,big") == ["big", "small"]
    assert names(glance, "tag=gold") == ["big"]
    assert names(glance, "os_distro=ubuntu") == ["small"]
    day = (timezone.now() - timedelta(days=8, hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert names(glance, f"created_at=lt:{day}") == ["big", "small"]
    assert names(glance, f"updated_at=gte:{day}") == ["off", "ova", "theirs"]
    assert glance.get(f"{V2}/images?created_at=soon").status_code == 400
    assert glance.get(f"{V2}/images?visibility=everyone").status_code == 400
    assert glance.get(f"{V2}/images?protected=maybe").status_code == 400
    assert glance.get(f"{V2}/images?size_min=-1").status_code == 400


def test_changes_since_leaves_out_older_images(glance, images):
    since = (timezone.now() - timedelta(days=7, hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert names(glance, f"changes-since={since}") == ["off", "theirs"]
    assert glance.get(f"{V2}/images?changes-since=yesterday").status_code == 400


@pytest.mark.parametrize(
    "query",
    ["os_distro__regex=.*", "os_distro__in=a", "os_distro__range=a", "os_distro__isnull=x",
     "os_distro__startswith=u", "tenant__name=acme"],
)  # fmt: skip
def test_a_property_filter_is_a_name_not_a_lookup(glance, images, query):
    # Glance compares a property's value; a name with `__` is just a name no image has.
    assert names(glance, query) == []
