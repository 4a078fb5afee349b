"""The deletion policy: which one applies, what the delete buttons and confirmations say under each, what a
delete does under each, and a change of policy applied to the images already in the bin."""

from datetime import timedelta

import pytest
from django.utils import timezone

from images.models import Image
from images.selectors import images_visible
from images.services import image_batch_delete, image_delete
from recyclebin.services import policy_apply, policy_for
from tenants.models import OperationLog


def test_the_default_is_delayed_three_days_and_a_tenant_may_have_its_own(tenant, other_tenant, set_policy):
    policy = policy_for(tenant=tenant)
    assert (policy.mode, policy.retention) == ("delayed", timedelta(days=3))
    set_policy("never", tenant=other_tenant)
    set_policy("immediate")
    assert policy_for(tenant=tenant).mode == "immediate"
    assert policy_for(tenant=other_tenant).mode == "never"


@pytest.mark.parametrize(
    ("mode", "label", "explains"),
    [
        ("immediate", "Delete", "destroyed at once"),
        ("delayed", "Move to recycle bin", "can be restored until"),
        ("never", "Move to recycle bin", "until someone destroys it"),
    ],
)
def test_buttons_and_confirmations_follow_the_policy(
    owner_client, tenant, make_image, set_policy, mode, label, explains
):
    set_policy(mode, days=2)
    image = make_image(tenant, name="web")
    page = owner_client.get("/images/").content.decode()
    assert f'data-testid="row-delete">{label}</a>' in page
    assert 'data-testid="batch-delete" data-batch-delete disabled' in page and f">{label}</button>" in page
    detail = owner_client.get(f"/images/{image.pk}/").content.decode()
    assert f'data-testid="detail-delete">{label}</a>' in detail
    confirm = owner_client.get(f"/images/{image.pk}/delete/").content.decode()
    assert explains in confirm and f'data-testid="confirm-delete">{label}</button>' in confirm
    batch = owner_client.get(f"/images/batch-delete/?ids={image.pk}").content.decode()
    assert f'data-testid="batch-confirm">{label}</button>' in batch
    if mode == "delayed":
        # "until when": two days from now, as the confirmation prints dates.
        assert str((timezone.now() + timedelta(days=2)).year) in confirm


def test_delayed_delete_keeps_the_image_in_the_bin_until_its_time(tenant, owner, make_image, set_policy):
    set_policy("delayed", days=3)
    image = image_delete(image=make_image(tenant), actor=owner)
    assert image.status == "deleted" and image.restore_status == "available"
    assert abs(image.purge_after - (image.deleted_at + timedelta(days=3))) < timedelta(seconds=1)
    assert not images_visible(tenant=tenant, membership=None).filter(pk=image.pk).exists()


def test_never_keeps_it_until_destroyed(tenant, owner, make_image, set_policy):
    set_policy("never")
    image = image_delete(image=make_image(tenant, status="failed"), actor=owner)
    assert (image.status, image.purge_after, image.restore_status) == ("deleted", None, "failed")


def test_immediate_delete_starts_the_expunge(
    tenant, owner, make_image, set_policy, django_capture_on_commit_callbacks, run_jobs
):
    set_policy("immediate")
    image = make_image(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        deleted = image_delete(image=image, actor=owner)
    # A real, visible status while the job has not run.
    assert deleted.status == "deleting"
    row = Image.objects.get(pk=image.pk)
    assert row.status == "deleting" and row.job_id  # its job is known, for the reconciler
    assert run_jobs(["maintenance"]) == 0
    assert not Image.objects.filter(pk=image.pk).exists()
    actions = list(
        OperationLog.objects.filter(target_id=str(image.pk)).order_by("pk").values_list("action", "result")
    )
    assert actions == [("image.delete", "started"), ("image.expunge", "success")]


def test_batch_delete_follows_the_policy_too(
    tenant, owner, make_image, set_policy, django_capture_on_commit_callbacks, run_jobs
):
    set_policy("immediate")
    images = [make_image(tenant) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        result = image_batch_delete(
            tenant=tenant,
            scope=Image.objects.filter(tenant=tenant),
            image_ids=[i.pk for i in images],
            actor=owner,
        )
    assert len(result.deleted) == 3
    assert set(Image.objects.filter(tenant=tenant).values_list("status", flat=True)) == {"deleting"}
    assert run_jobs(["maintenance"]) == 0
    assert not Image.objects.filter(tenant=tenant).exists()


def test_api_delete_answers_202_when_expunged_and_204_into_the_bin(
    client, tenant, owner, make_image, set_policy, rq_redis
):
    from tenants.services import api_token_create

    _token, key = api_token_create(user=owner)
    headers = {"HTTP_AUTHORIZATION": f"Token {key}"}
    kept = make_image(tenant)
    assert client.delete(f"/api/v1/images/{kept.pk}/", **headers).status_code == 204
    set_policy("immediate")
    gone = make_image(tenant)
    response = client.delete(f"/api/v1/images/{gone.pk}/", **headers)
    assert response.status_code == 202 and response.json()["status"] == "deleting"


def test_a_policy_change_applies_to_the_bin_by_the_stated_rule(
    tenant, other_tenant, owner, make_image, set_policy, rq_redis
):
    set_policy("delayed", days=3)
    mine = image_delete(image=make_image(tenant), actor=owner)
    set_policy("delayed", days=30, tenant=other_tenant)
    theirs = image_delete(image=make_image(other_tenant), actor=other_tenant.memberships.first().user)
    # A shorter retention brings the time forward, counted from the deletion.
    set_policy("delayed", days=1)
    assert policy_apply(tenant=None) == 1
    mine.refresh_from_db()
    assert abs(mine.purge_after - (mine.deleted_at + timedelta(days=1))) < timedelta(seconds=1)
    # A tenant with its own policy is not touched by the platform's.
    before = theirs.purge_after
    theirs.refresh_from_db()
    assert theirs.purge_after == before
    # "never" clears the times; back to delayed sets them again.
    set_policy("never")
    assert policy_apply(tenant=None) == 1
    mine.refresh_from_db()
    assert mine.purge_after is None
    set_policy("delayed", days=2)
    policy_apply(tenant=None)
    mine.refresh_from_db()
    assert abs(mine.purge_after - (mine.deleted_at + timedelta(days=2))) < timedelta(seconds=1)
    # Immediate changes only later deletions.
    set_policy("immediate")
    assert policy_apply(tenant=None) == 0
    mine.refresh_from_db()
    assert mine.purge_after is not None and mine.status == "deleted"
    assert OperationLog.objects.filter(action="recyclebin.policy").count() == 4


def test_admin_edits_the_policy_and_it_applies(admin_client, tenant, owner, make_image, rq_redis):
    image = image_delete(image=make_image(tenant), actor=owner)
    page = admin_client.get("/admin/recyclebin/deletionpolicy/", follow=True)
    assert page.status_code == 200 and "a shorter retention brings the time forward" in page.content.decode()
    response = admin_client.post(
        "/admin/recyclebin/deletionpolicy/1/change/",
        {"mode": "delayed", "retention_days": "0.5"},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 image in the recycle bin got a new expunge time." in response.content.decode()
    image.refresh_from_db()
    assert abs(image.purge_after - (image.deleted_at + timedelta(hours=12))) < timedelta(seconds=1)
    response = admin_client.post(
        "/admin/recyclebin/tenantdeletionpolicy/add/",
        {"tenant": tenant.pk, "mode": "never", "retention_days": "3"},
    )
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.purge_after is None
