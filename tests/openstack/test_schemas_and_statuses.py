"""The schemas glanceclient downloads (and validates against), and Glance's statuses derived from ours:
each of queued, saving, uploading, importing, active, deactivated, killed, deleted."""

import json

import jsonschema
import pytest

from images.models import Image, ImageShare
from openstack.image.members import member_body
from openstack.image.serialize import glance_status, image_body

from .conftest import V2


def test_each_schema_is_served_and_our_bodies_validate_against_it(glance, tenant, other_tenant):
    schemas = {
        name: glance.get(f"{V2}/schemas/{name}").json() for name in ("image", "images", "member", "members")
    }
    assert {name: schema["name"] for name, schema in schemas.items()} == {n: n for n in schemas}
    image = Image.objects.create(
        tenant=tenant, name="x", disk_format="qcow2", status="available", stage="", size=5, virtual_size=9,
        md5="0" * 32, sha256="1" * 64, properties={"os_distro": "ubuntu"}, sharing="tenants",
    )  # fmt: skip
    queued = Image.objects.create(
        tenant=tenant, name="q", disk_format="raw", status="uploading", stage="queued"
    )
    for each in (image, queued):
        jsonschema.validate(image_body(each, tenant=tenant), schemas["image"])
    listed = glance.get(f"{V2}/images").json()
    jsonschema.validate(listed, schemas["images"])
    assert len(listed["images"]) == 2
    share = ImageShare.objects.create(image=image, tenant=other_tenant)
    jsonschema.validate(member_body(share), schemas["member"])
    jsonschema.validate(glance.get(f"{V2}/images/{image.pk}/members").json(), schemas["members"])
    # A property that is not a string breaks the schema's additionalProperties, as in Glance.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**image_body(image, tenant=tenant), "os_distro": 5}, schemas["image"])


@pytest.mark.parametrize(
    ("status", "stage", "source", "enabled", "staged", "glance"),
    [
        ("uploading", "queued", "upload", True, False, "queued"),
        ("uploading", "queued", "upload", True, True, "uploading"),
        ("uploading", "receiving", "upload", True, False, "saving"),
        ("uploading", "inspecting", "upload", True, False, "saving"),
        ("uploading", "queued", "url", True, False, "importing"),
        ("uploading", "downloading", "url", True, False, "importing"),
        ("creating", "", "vm", True, False, "saving"),
        ("available", "", "upload", True, False, "active"),
        ("available", "", "upload", False, False, "deactivated"),
        ("failed", "", "upload", True, False, "killed"),
        ("deleting", "", "upload", True, False, "deleted"),
        ("deleted", "", "upload", True, False, "deleted"),
    ],
)
def test_glance_status_of_each_of_ours(status, stage, source, enabled, staged, glance):
    image = Image(status=status, stage=stage, source=source, enabled=enabled)
    assert glance_status(image, staged=staged) == glance


def test_visibility_by_patch(glance, tenant, admin_user):
    from .conftest import PATCH, token_client

    image = Image.objects.create(tenant=tenant, name="v", disk_format="qcow2", status="available", stage="")

    def patch(client, value):
        ops = json.dumps([{"op": "replace", "path": "/visibility", "value": value}])
        return client.patch(f"{V2}/images/{image.pk}", ops, content_type=PATCH)

    assert patch(glance, "public").status_code == 403
    assert patch(glance, "community").status_code == 400
    assert patch(glance, "everyone").status_code == 400
    assert Image.objects.get(pk=image.pk).sharing == "private"
    staff = token_client(admin_user)
    response = patch(staff, "public")
    assert response.status_code == 200 and response.json()["visibility"] == "public"
    assert Image.objects.get(pk=image.pk).sharing == "global"
    assert patch(glance, "private").json()["visibility"] == "private"
