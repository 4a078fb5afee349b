"""Edit, enable/disable, sharing and deletion of images, each recorded in the operation log."""

import pytest
from django.core.exceptions import ValidationError

from images.models import Image
from images.selectors import images_visible
from images.services import (
    TransitionNotAllowed,
    image_batch_delete,
    image_delete,
    image_set_enabled,
    image_set_sharing,
    image_share_answer,
    image_update,
    lifecycle,
)
from tenants.models import OperationLog


def _logs(image, action):
    return list(OperationLog.objects.filter(target_id=str(image.pk), action=action).order_by("pk"))


@pytest.mark.parametrize("status", [s for s in Image.Status.values if s != "deleted"])
def test_name_and_remarks_can_be_edited_in_any_status(tenant, owner, make_image, status):
    image = make_image(tenant, name="old", status=status)
    image_update(image=image, name="New name (v2)", description="for the web tier", actor=owner)
    image.refresh_from_db()
    assert (image.name, image.description) == ("New name (v2)", "for the web tier")
    [entry] = _logs(image, "image.update")
    assert entry.actor == owner and "old" in entry.message and "New name (v2)" in entry.message


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "required"),
        ("   ", "spaces"),
        (" padded", "spaces"),
        ("x" * 129, "max_length"),
        ("semi;colon", "characters"),
        ("slash/name", "characters"),
    ],
)
def test_bad_names_are_refused_with_a_reason_and_nothing_changes(tenant, make_image, name, code):
    image = make_image(tenant, name="keep")
    with pytest.raises(ValidationError) as caught:
        image_update(image=image, name=name)
    assert caught.value.error_dict["name"][0].code == code
    image.refresh_from_db()
    assert image.name == "keep"
    assert not _logs(image, "image.update")


def test_names_in_any_script_are_accepted(tenant, make_image):
    image = make_image(tenant)
    image_update(image=image, name="中文镜像 CentOS-7.9_x86 (测试):+")
    image.refresh_from_db()
    assert image.name == "中文镜像 CentOS-7.9_x86 (测试):+"


def test_labels_are_cleaned(tenant, make_image):
    image = make_image(tenant)
    image_update(image=image, labels=[" web ", "web", "", "db"])
    image.refresh_from_db()
    assert image.labels == ["web", "db"]
    with pytest.raises(ValidationError):
        image_update(image=image, labels=["x" * 65])
    with pytest.raises(ValidationError):
        image_update(image=image, labels="web,db")


def test_enable_and_disable_are_logged_once(tenant, owner, make_image):
    image = make_image(tenant)
    image_set_enabled(image=image, enabled=False, actor=owner)
    image_set_enabled(image=image, enabled=False, actor=owner)
    assert image.enabled is False
    image_set_enabled(image=image, enabled=True, actor=owner)
    assert image.enabled is True
    assert len(_logs(image, "image.disable")) == 1 and len(_logs(image, "image.enable")) == 1


def test_sharing_with_chosen_tenants_then_revoking(tenant, other_tenant, owner, make_image):
    image = make_image(tenant, name="golden")
    image_set_sharing(image=image, sharing="tenants", tenants=[other_tenant, tenant], actor=owner)
    assert list(image.shared_with.all()) == [other_tenant]
    # The tenant sees it once it accepted (its consent, as OpenStack image members).
    assert not images_visible(tenant=other_tenant, membership=None).exists()
    image_share_answer(image=image, tenant=other_tenant, status="accepted")
    assert [i.name for i in images_visible(tenant=other_tenant, membership=None)] == ["golden"]
    image_set_sharing(image=image, sharing="private", actor=owner)
    assert not image.shared_with.exists()
    assert not images_visible(tenant=other_tenant, membership=None).exists()
    assert [e.message for e in _logs(image, "image.share")] == [
        "Shared with chosen tenants: globex",
        "Not shared",
    ]


def test_sharing_with_chosen_tenants_needs_one(tenant, owner, make_image):
    image = make_image(tenant)
    with pytest.raises(ValidationError) as caught:
        image_set_sharing(image=image, sharing="tenants", tenants=[tenant], actor=owner)
    assert "shared_with" in caught.value.error_dict


def test_only_administrators_share_globally(tenant, other_tenant, owner, admin_user, make_image):
    image = make_image(tenant, name="base")
    with pytest.raises(ValidationError) as caught:
        image_set_sharing(image=image, sharing="global", actor=owner)
    assert "administrator" in caught.value.error_dict["sharing"][0].message
    image.refresh_from_db()
    assert image.sharing == "private"
    image_set_sharing(image=image, sharing="global", actor=admin_user)
    assert [i.name for i in images_visible(tenant=other_tenant, membership=None)] == ["base"]


@pytest.mark.parametrize("status", ["available", "failed"])
def test_delete_moves_to_the_recycle_bin_with_who_when_and_until_when(tenant, owner, make_image, status):
    image = make_image(tenant, status=status)
    deleted = image_delete(image=image, actor=owner)
    assert deleted.status == "deleted" and deleted.deleted_by == owner and deleted.deleted_at is not None
    assert deleted.restore_status == status and deleted.purge_after is not None
    # `deleting` is the expunge's own status now: a move to the bin is one change, logged once, worded.
    label = {"available": "Available", "failed": "Import failed"}[status]
    assert [e.message for e in _logs(image, "image.delete")] == [f"{label} → Deleted"]
    assert not images_visible(tenant=tenant, membership=None).filter(pk=image.pk).exists()
    assert Image.objects.filter(pk=image.pk).exists()  # in the recycle bin, not erased


@pytest.mark.parametrize("status", ["uploading", "creating", "deleting", "deleted"])
def test_only_available_or_failed_images_can_be_deleted(tenant, make_image, status):
    image = make_image(tenant, status=status)
    with pytest.raises(TransitionNotAllowed):
        image_delete(image=image)
    image.refresh_from_db()
    assert image.status == status and image.deleted_at is None


def test_an_image_used_by_a_vm_is_not_deleted(tenant, make_image, monkeypatch):
    # The compute app does not exist yet: stand in for its answer through the hook it will fill.
    image = make_image(tenant, name="in-use")
    monkeypatch.setattr(lifecycle, "vms_using_images", lambda image_ids: {image.pk: ["web-1", "web-2"]})
    with pytest.raises(ValidationError) as caught:
        image_delete(image=image)
    assert "web-1" in caught.value.messages[0] and "web-2" in caught.value.messages[0]
    image.refresh_from_db()
    assert image.status == "available"
    result = image_batch_delete(
        tenant=tenant, scope=images_visible(tenant=tenant, membership=None), image_ids=[image.pk]
    )
    assert not result.items[0].deleted and "web-1" in result.items[0].reason


def test_batch_delete_reports_each_image(tenant, other_tenant, owner, make_image):
    ok1 = make_image(tenant, name="ok-1")
    ok2 = make_image(tenant, name="ok-2", status="failed")
    busy = make_image(tenant, name="busy", status="uploading")
    shared = make_image(other_tenant, name="shared", sharing="global")
    theirs = make_image(other_tenant, name="theirs")
    scope = images_visible(tenant=tenant, membership=None)
    ids = [ok1.pk, busy.pk, shared.pk, theirs.pk, ok2.pk, "junk"]
    result = image_batch_delete(tenant=tenant, scope=scope, image_ids=ids, actor=owner)
    outcome = {str(item.id): (item.deleted, item.reason) for item in result.items}
    assert [str(item.id) for item in result.items] == [str(i) for i in ids]
    assert outcome[str(ok1.pk)] == (True, "") and outcome[str(ok2.pk)] == (True, "")
    assert "Importing" in outcome[str(busy.pk)][1]
    assert "read-only" in outcome[str(shared.pk)][1]
    assert outcome[str(theirs.pk)] == (False, "Not found.")
    assert outcome["junk"] == (False, "Not found.")
    statuses = dict(Image.objects.values_list("name", "status"))
    assert statuses == {
        "ok-1": "deleted",
        "ok-2": "deleted",
        "busy": "uploading",
        "shared": "available",
        "theirs": "available",
    }
    ok1.refresh_from_db()
    assert ok1.deleted_by == owner and ok1.deleted_at is not None
    assert _logs(ok1, "image.delete")[0].result == "success"
    assert _logs(busy, "image.delete")[0].result == "failure"
    assert not _logs(shared, "image.delete") and not _logs(theirs, "image.delete")


def test_batch_delete_of_all_matching_the_filter(tenant, make_image):
    for n in range(3):
        make_image(tenant, name=f"win-{n}", os_type="windows")
    make_image(tenant, name="linux", os_type="linux")
    scope = images_visible(tenant=tenant, membership=None).filter(os_type="windows")
    result = image_batch_delete(tenant=tenant, scope=scope, image_ids=None)
    assert len(result.deleted) == 3 and not result.skipped
    assert list(images_visible(tenant=tenant, membership=None).values_list("name", flat=True)) == ["linux"]


def test_batch_delete_work_is_bulk_not_per_image(tenant, make_image, django_assert_max_num_queries):
    def run(count):
        images = Image.objects.bulk_create(
            Image(tenant=tenant, name=f"bulk-{count}-{n}", disk_format="qcow2", status="available")
            for n in range(count)
        )
        scope = images_visible(tenant=tenant, membership=None)
        return scope, [image.pk for image in images]

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    scope, ids = run(5)
    with CaptureQueriesContext(connection) as small:
        assert len(image_batch_delete(tenant=tenant, scope=scope, image_ids=ids).deleted) == 5
    # Inserting the 400 log entries takes a few batches (SQLite's parameter limit); nothing is per image.
    scope, ids = run(400)
    with django_assert_max_num_queries(len(small.captured_queries) + 6):
        assert len(image_batch_delete(tenant=tenant, scope=scope, image_ids=ids).deleted) == 400
