"""Who an OpenStack request is: its token (an Identity v3 token or a console API key), user, tenant."""

from dataclasses import dataclass

from django.utils import timezone

from tenants.models import ApiToken, Membership, Tenant
from tenants.selectors import tenants_for_user

from .models import IdentityToken


@dataclass
class Caller:
    user: object
    tenant: Tenant
    membership: Membership | None
    identity_token: IdentityToken | None = None

    @property
    def can_manage(self) -> bool:
        if self.user.is_staff:
            return True
        return self.membership is not None and self.membership.can_manage


def identity_token_valid(key: str) -> IdentityToken | None:
    """The live token of this key: not expired, not revoked, its user active and still a member."""
    token = (
        IdentityToken.objects.select_related("user", "tenant")
        .filter(key_hash=IdentityToken.hash_key(key), revoked_at=None, expires_at__gt=timezone.now())
        .first()
    )
    if token is None or not token.user.is_active or not token.tenant.is_active:
        return None
    if (
        not token.user.is_staff
        and not Membership.objects.filter(user=token.user, tenant=token.tenant).exists()
    ):
        return None
    return token


def caller_for_token(key: str, *, tenant_hint: str = "") -> Caller | None:
    """The caller an `X-Auth-Token` names, or None. A console API key works in the user's first tenant,
    or the one `X-Tenant` (id or name) chooses among those open to the user."""
    if not key:
        return None
    token = identity_token_valid(key)
    if token is not None:
        membership = Membership.objects.filter(user=token.user, tenant=token.tenant).first()
        return Caller(token.user, token.tenant, membership, token)
    api_token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
    if api_token is None or not api_token.user.is_active:
        return None
    user = api_token.user
    tenants = tenants_for_user(user)
    if tenant_hint:
        tenant = (
            tenants.filter(pk=int(tenant_hint)) if tenant_hint.isdigit() else tenants.filter(name=tenant_hint)
        )
        tenant = tenant.first()
        if tenant is None:
            return None
        membership = Membership.objects.filter(user=user, tenant=tenant).first()
    else:
        membership = (
            Membership.objects.select_related("tenant")
            .filter(user=user, tenant__is_active=True)
            .order_by("role", "tenant__name")
            .first()
        )
        tenant = membership.tenant if membership else tenants.order_by("name").first()
        if tenant is None:
            return None
    from tenants.services import api_token_touch

    api_token_touch(token=api_token)
    return Caller(user, tenant, membership)


def project_for_login(
    *, user, project_name: str = "", project_id: str = ""
) -> tuple[Tenant, Membership | None] | None:
    """The tenant a password login scopes to (the OpenStack project), if the user may work in it."""
    tenants = tenants_for_user(user)
    if project_id:
        tenants = tenants.filter(pk=int(project_id)) if str(project_id).isdigit() else tenants.none()
    elif project_name:
        tenants = tenants.filter(name=project_name)
    else:
        membership = (
            Membership.objects.select_related("tenant")
            .filter(user=user, tenant__is_active=True)
            .order_by("role", "tenant__name")
            .first()
        )
        return (membership.tenant, membership) if membership else None
    tenant = tenants.first()
    if tenant is None:
        return None
    return tenant, Membership.objects.filter(user=user, tenant=tenant).first()
