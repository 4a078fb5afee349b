"""Every state change of the tenants app, and `log()`, which every other app's services call."""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from imageconsole.core.http import client_ip
from imageconsole.core.sizes import sizes_apart

from .models import ApiToken, Membership, OperationLog, ProjectGroup, Quota, Tenant, UserPreference
from .oplog import coded, english, word

User = get_user_model()


def log(
    *,
    action: str,
    tenant: Tenant | None = None,
    actor=None,
    target=None,
    target_type: str = "",
    target_id: str = "",
    target_name: str = "",
    result: str = OperationLog.Result.SUCCESS,
    message: str = "",
    request=None,
    message_code: str = "",
    params: dict | None = None,
) -> OperationLog:
    """Record who did what to which resource. `target` may be any model instance.

    A message for people is best given as `message_code` (an English template marked with
    gettext_noop) and `params` (see tenants.oplog): it is then worded in each reader's language.
    `message` (free text) still works and is shown as written."""
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    message, message_code, params = coded(message, message_code, params)
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
        target_name = target_name or str(target)
    return OperationLog.objects.create(
        tenant=tenant,
        actor=actor if actor is not None and actor.pk else None,
        actor_name=actor.get_username() if actor is not None else "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_name=target_name[:255],
        result=result,
        message=message or english(message_code, params),
        message_code=message_code,
        message_params=params or {},
        client_ip=client_ip(request),
    )


def log_many(
    *,
    action: str,
    entries: list[dict],
    actor=None,
    request=None,
    result: str = OperationLog.Result.SUCCESS,
    batch_size: int = 500,
) -> list[OperationLog]:
    """`log()` for many resources in one INSERT a batch: each entry holds `tenant_id`, `target` (a model
    instance) and optionally `message`, `message_code` and `params` (as in `log()`) and `result`; actor
    and client address are common to all."""
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    actor_obj = actor if actor is not None and actor.pk else None
    actor_name = actor.get_username() if actor is not None else ""
    ip = client_ip(request)
    entries = [_coded_entry(entry) for entry in entries]
    rows = [
        OperationLog(
            tenant_id=entry["tenant_id"],
            actor=actor_obj,
            actor_name=actor_name,
            action=action,
            target_type=entry["target"]._meta.model_name,
            target_id=str(entry["target"].pk),
            target_name=str(entry["target"])[:255],
            result=entry.get("result", result),
            message=entry.get("message") or english(entry.get("message_code", ""), entry.get("params")),
            message_code=entry.get("message_code", ""),
            message_params=entry.get("params") or {},
            client_ip=ip,
        )
        for entry in entries
    ]
    return OperationLog.objects.bulk_create(rows, batch_size=batch_size)


def _coded_entry(entry: dict) -> dict:
    message, code, params = coded(
        entry.get("message", ""), entry.get("message_code", ""), entry.get("params")
    )
    return {**entry, "message": message, "message_code": code, "params": params}


@transaction.atomic
def tenant_create(*, name: str, description: str = "", actor=None, request=None) -> Tenant:
    tenant = Tenant(name=name, description=description)
    tenant.full_clean()
    tenant.save()
    Quota.objects.create(tenant=tenant)
    log(action="tenant.create", tenant=tenant, actor=actor, target=tenant, request=request)
    return tenant


@transaction.atomic
def user_create(*, username: str, password: str, email: str = "") -> "User":
    user = User(username=username, email=email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user


@transaction.atomic
def membership_add(
    *,
    tenant: Tenant,
    user,
    role: str = Membership.Role.SUBACCOUNT,
    permission: str = Membership.Permission.VIEW,
    project_groups=(),
    actor=None,
    request=None,
) -> Membership:
    membership = Membership(tenant=tenant, user=user, role=role, permission=permission)
    membership.full_clean()
    membership.save()
    if project_groups:
        membership.project_groups.set(project_groups)
    log(
        action="membership.add",
        tenant=tenant,
        actor=actor,
        target=membership,
        message_code=gettext_noop("%(role)s / %(permission)s"),
        params={
            "role": word(Membership.Role(role).label, "Membership role"),
            "permission": word(Membership.Permission(permission).label, "Sub-account permission"),
        },
        request=request,
    )
    return membership


@transaction.atomic
def project_group_create(
    *, tenant: Tenant, name: str, description: str = "", actor=None, request=None
) -> ProjectGroup:
    group = ProjectGroup(tenant=tenant, name=name, description=description)
    group.full_clean()
    group.save()
    log(action="project_group.create", tenant=tenant, actor=actor, target=group, request=request)
    return group


@transaction.atomic
def project_group_update(
    *, group: ProjectGroup, name: str, description: str = "", actor=None, request=None
) -> ProjectGroup:
    group.name = name
    group.description = description
    group.full_clean()
    group.save()
    log(action="project_group.update", tenant=group.tenant, actor=actor, target=group, request=request)
    return group


@transaction.atomic
def project_group_delete(*, group: ProjectGroup, actor=None, request=None) -> None:
    log(action="project_group.delete", tenant=group.tenant, actor=actor, target=group, request=request)
    group.delete()


class QuotaExceeded(ValidationError):
    pass


@dataclass(frozen=True)
class Usage:
    images: int
    bytes: int


# Image statuses of the recycle bin: such images leave the image count at once, and keep counting in
# bytes until they are expunged (their data is still stored), so deleting cannot dodge the size limit.
IN_RECYCLE_BIN = ("deleted", "deleting")


def tenant_usage(*, tenant: Tenant) -> Usage:
    """What counts against the quota: images not in the recycle bin, and the bytes of every image that
    holds or will hold data (not yet expunged)."""
    from django.apps import apps
    from django.db.models import Count, Q, Sum
    from django.db.models.functions import Coalesce

    Image = apps.get_model("images", "Image")
    row = Image.objects.filter(tenant=tenant).aggregate(
        images=Count("pk", filter=~Q(status__in=IN_RECYCLE_BIN)), bytes=Coalesce(Sum("size"), 0)
    )
    return Usage(images=row["images"], bytes=row["bytes"])


def quota_check(*, tenant: Tenant, add_images: int = 0, add_bytes: int = 0) -> None:
    """Raise QuotaExceeded when adding this much would pass the tenant's quota.

    Callers that then create rows hold the tenant's quota row locked (`quota_lock`) so that two
    imports cannot both pass the check on the same headroom.
    """
    quota = Quota.objects.filter(tenant=tenant).first()
    if quota is None or (quota.max_images is None and quota.max_bytes is None):
        return
    usage = tenant_usage(tenant=tenant)
    if quota.max_images is not None and usage.images + add_images > quota.max_images:
        raise QuotaExceeded(
            _(
                "The tenant's quota allows %(limit)d images and %(used)d exist. Delete images or ask "
                "an administrator to raise the quota."
            )
            % {"limit": quota.max_images, "used": usage.images},
            code="quota_images",
        )
    if quota.max_bytes is not None and usage.bytes + add_bytes > quota.max_bytes:
        needed, left, limit = sizes_apart(add_bytes, max(quota.max_bytes - usage.bytes, 0), quota.max_bytes)
        raise QuotaExceeded(
            _(
                "This needs %(needed)s more but the tenant's quota leaves %(left)s of %(limit)s. Images "
                "in the recycle bin count until they are destroyed: destroy some there, or ask an "
                "administrator to raise the quota."
            )
            % {"needed": needed, "left": left, "limit": limit},
            code="quota_bytes",
        )


def quota_lock(*, tenant: Tenant) -> None:
    """Serialise quota checks of one tenant until the surrounding transaction ends."""
    Quota.objects.select_for_update().filter(tenant=tenant).first()


@transaction.atomic
def quota_update(*, tenant: Tenant, max_images, max_bytes, actor=None, request=None) -> Quota:
    quota, _created = Quota.objects.get_or_create(tenant=tenant)
    quota.max_images = max_images
    quota.max_bytes = max_bytes
    quota.full_clean()
    quota.save()
    log(action="quota.update", tenant=tenant, actor=actor, target=quota, request=request)
    return quota


def api_token_create(*, user, name: str = "", expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token and return it with its key; the key is not stored and cannot be shown again.
    With `expires_in_days` the token is refused after that many days."""
    if expires_in_days is not None and expires_in_days < 1:
        raise ValidationError(
            {
                "expires_in_days": _(
                    "A token lasts at least one day; leave the expiry out for one that never expires."
                )
            },
            code="expiry",
        )
    key = ApiToken.generate_key()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[: ApiToken.PREFIX_LENGTH],
        key_hash=ApiToken.hash_key(key),
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    return token, key


def api_token_touch(*, token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


@transaction.atomic
def preference_set(*, user, key: str, value) -> None:
    """Remember one of a user's console choices (JSON-serialisable `value`)."""
    preference, _created = UserPreference.objects.select_for_update().get_or_create(user=user)
    preference.values = {**preference.values, key: value}
    preference.save(update_fields=["values", "updated_at"])
