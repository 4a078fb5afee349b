"""Every change made through the Image API and the Identity endpoint is in the OperationLog, under the
caller's name and tenant."""

import json

from images.models import Image
from tenants.models import OperationLog

from .conftest import PATCH, V2
from .test_images import upload  # noqa: F401  (fixture)


def actions(image_id) -> list[str]:
    return list(
        OperationLog.objects.filter(target_id=str(image_id)).order_by("pk").values_list("action", flat=True)
    )


def test_each_change_is_logged(glance, upload, owner, tenant, other_tenant, other_glance):  # noqa: F811
    image_id, _data = upload()
    before = len(actions(image_id))
    first_pk = OperationLog.objects.order_by("pk").last().pk
    steps = [
        ("image.update", lambda: glance.patch(f"{V2}/images/{image_id}", json.dumps(
            [{"op": "replace", "path": "/name", "value": "renamed"}]), content_type=PATCH)),
        ("image.update", lambda: glance.patch(f"{V2}/images/{image_id}", json.dumps(
            [{"op": "add", "path": "/os_distro", "value": "ubuntu"}]), content_type=PATCH)),
        ("image.update", lambda: glance.put(f"{V2}/images/{image_id}/tags/gold")),
        ("image.update", lambda: glance.delete(f"{V2}/images/{image_id}/tags/gold")),
        ("image.disable", lambda: glance.post(f"{V2}/images/{image_id}/actions/deactivate")),
        ("image.enable", lambda: glance.post(f"{V2}/images/{image_id}/actions/reactivate")),
        ("image.share", lambda: glance.post(f"{V2}/images/{image_id}/members", json.dumps(
            {"member": str(other_tenant.pk)}), content_type="application/json")),
        ("image.share.accepted", lambda: other_glance.put(f"{V2}/images/{image_id}/members/{other_tenant.pk}",
            json.dumps({"status": "accepted"}), content_type="application/json")),
        ("image.share", lambda: glance.delete(f"{V2}/images/{image_id}/members/{other_tenant.pk}")),
        ("image.delete", lambda: glance.delete(f"{V2}/images/{image_id}")),
    ]  # fmt: skip
    for expected, step in steps:
        response = step()
        assert response.status_code in (200, 204), (expected, response.content)
        logged = actions(image_id)
        assert logged[before:] == [expected], (expected, logged[before:])
        before = len(logged)
    entries = OperationLog.objects.filter(target_id=image_id, pk__gt=first_pk)
    assert {(e.actor_id, e.tenant_id) for e in entries.exclude(action="image.share.accepted")} == {
        (owner.pk, tenant.pk)
    }
    accepted = entries.get(action="image.share.accepted")
    assert (accepted.actor, accepted.tenant) == (
        other_tenant.memberships.get(role="owner").user,
        other_tenant,
    )
    assert Image.objects.get(pk=image_id).status in ("deleting", "deleted")


def test_a_token_revocation_is_logged(owner):
    from django.test import Client

    from .test_identity import TOKENS, login

    key = login(Client(), "acme-owner")["X-Subject-Token"]
    Client(HTTP_X_AUTH_TOKEN=key).delete(TOKENS, HTTP_X_SUBJECT_TOKEN=key)
    assert OperationLog.objects.filter(action="openstack.token.revoke", actor=owner).count() == 1
