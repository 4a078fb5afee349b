"""The deletion policy: which applies to a tenant, what a delete does under it, and applying a change to
the images already in the recycle bin (the rule `models.POLICY_RULE` states on the admin page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import ExpressionWrapper, F, Value
from django.db.models.fields import DateTimeField
from django.utils import timezone
from django.utils.translation import gettext_noop

from images import hooks
from images.models import Image
from tenants.models import Tenant
from tenants.oplog import word
from tenants.services import log

from ..models import DEFAULT_RETENTION_DAYS, DeletionPolicy, Mode, TenantDeletionPolicy
from .bin import enqueue_expunge, schedule_expiry


@dataclass(frozen=True)
class Policy:
    mode: str
    retention: timedelta | None  # delayed deletion only
    overridden: bool = False  # the tenant's own policy, not the platform's

    @property
    def immediate(self) -> bool:
        return self.mode == Mode.IMMEDIATE


def _policy_of(row) -> Policy:
    retention = None
    if row.mode == Mode.DELAYED:
        retention = timedelta(days=float(row.retention_days or DEFAULT_RETENTION_DAYS))
    return Policy(mode=row.mode, retention=retention, overridden=isinstance(row, TenantDeletionPolicy))


def platform_policy(*, create: bool = False) -> DeletionPolicy:
    """The platform's policy row; until an administrator saves one, the defaults (delayed, 3 days)."""
    if create:
        return DeletionPolicy.objects.get_or_create(pk=1)[0]
    return DeletionPolicy.objects.filter(pk=1).first() or DeletionPolicy(pk=1)


def policy_for(*, tenant: Tenant | None) -> Policy:
    """The tenant's own policy, else the platform's: one query (every list page asks it)."""
    if tenant is None:
        return _policy_of(platform_policy())
    fields = ("rank", "mode", "retention_days")
    own = TenantDeletionPolicy.objects.filter(tenant=tenant).annotate(rank=Value(0)).values_list(*fields)
    platform = DeletionPolicy.objects.filter(pk=1).annotate(rank=Value(1)).values_list(*fields)
    rows = sorted(own.union(platform, all=True))
    if not rows:
        return _policy_of(DeletionPolicy(pk=1))
    rank, mode, retention_days = rows[0]
    row = (
        TenantDeletionPolicy(mode=mode, retention_days=retention_days)
        if rank == 0
        else DeletionPolicy(mode=mode, retention_days=retention_days)
    )
    return _policy_of(row)


def deletion_plan(*, tenant: Tenant) -> hooks.DeletionPlan:
    """The answer images' delete path asks for (registered in RecyclebinConfig.ready)."""
    policy = policy_for(tenant=tenant)
    if policy.immediate:
        return hooks.DeletionPlan(expunge_now=True)
    if policy.retention is None:
        return hooks.DeletionPlan(purge_after=None)
    return hooks.DeletionPlan(purge_after=timezone.now() + policy.retention)


def after_delete(*, image_ids, tenant_id, expunge_now: bool) -> None:
    """After a delete commits: expunges queued (immediate), or each image's expiry scheduled."""
    if expunge_now:
        for image_id in image_ids:
            enqueue_expunge(image_id=image_id)
        return
    rows = Image.objects.filter(pk__in=list(image_ids), status=Image.Status.DELETED).exclude(purge_after=None)
    for image_id, purge_after in rows.values_list("pk", "purge_after"):
        schedule_expiry(image_id=image_id, purge_after=purge_after)


def _bin_of(*, tenant: Tenant | None):
    """Images in the bin that follow the policy being changed: a tenant's, or (platform policy) those of
    every tenant without its own policy."""
    binned = Image.objects.filter(status=Image.Status.DELETED)
    if tenant is not None:
        return binned.filter(tenant=tenant)
    return binned.exclude(tenant__in=TenantDeletionPolicy.objects.values("tenant"))


def _policy_words(policy: Policy, changed: int) -> dict:
    """The operation log's words for a policy change, worded for each reader."""
    params = {"mode": word(Mode(policy.mode).label, "Deletion policy"), "count": changed}
    if policy.retention is None:
        code = gettext_noop("%(mode)s; images in the recycle bin given a new expunge time: %(count)s")
    else:
        code = gettext_noop(
            "%(mode)s, retention %(days)s days; images in the recycle bin given a new expunge time: %(count)s"
        )
        params["days"] = f"{policy.retention.total_seconds() / 86400:g}"
    return {"message_code": code, "params": params}


@transaction.atomic
def policy_apply(*, tenant: Tenant | None, actor=None, request=None) -> int:
    """Apply the policy now in force (the tenant's, or the platform's when `tenant` is None) to the
    images in the bin it governs, by POLICY_RULE. Returns how many images got a new expunge time."""
    policy = policy_for(tenant=tenant) if tenant is not None else _policy_of(platform_policy())
    binned = _bin_of(tenant=tenant)
    if policy.mode == Mode.NEVER:
        changed = binned.exclude(purge_after=None).update(purge_after=None, updated_at=timezone.now())
    elif policy.mode == Mode.DELAYED:
        before = dict(binned.exclude(deleted_at=None).values_list("pk", "purge_after"))
        due = ExpressionWrapper(F("deleted_at") + policy.retention, output_field=DateTimeField())
        Image.objects.filter(pk__in=list(before), status=Image.Status.DELETED).update(purge_after=due)
        rows = list(
            Image.objects.filter(pk__in=list(before), status=Image.Status.DELETED).values_list(
                "pk", "purge_after"
            )
        )
        moved = [(pk, at) for pk, at in rows if at != before.get(pk)]
        changed = len(moved)
        transaction.on_commit(lambda: [schedule_expiry(image_id=pk, purge_after=at) for pk, at in moved])
    else:
        changed = 0
    log(
        action="recyclebin.policy",
        tenant=tenant,
        actor=actor,
        target_type="deletionpolicy",
        target_id=str(tenant.pk) if tenant is not None else "platform",
        target_name=str(tenant) if tenant is not None else "platform",
        **_policy_words(policy, changed),
        request=request,
    )
    return changed
