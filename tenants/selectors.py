"""Tenant-scoped reads. Views reach tenants' data only through these and `request.tenant`."""

from django.db.models import Q, QuerySet

from .models import Membership, OperationLog, ProjectGroup, Tenant, UserPreference

SESSION_TENANT_KEY = "current_tenant_id"


def tenants_for_user(user) -> QuerySet[Tenant]:
    """The tenants a user may work in: every active one for platform administrators."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    if user.is_staff:
        return Tenant.objects.filter(is_active=True)
    return Tenant.objects.filter(is_active=True, memberships__user=user).distinct()


def resolve_current_tenant(request) -> tuple[Tenant | None, Membership | None]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None, None
    wanted = request.session.get(SESSION_TENANT_KEY)
    membership = None
    tenant = None
    if wanted is not None:
        membership = (
            Membership.objects.select_related("tenant")
            .filter(user=user, tenant_id=wanted, tenant__is_active=True)
            .first()
        )
        if membership is not None:
            tenant = membership.tenant
        elif user.is_staff:
            tenant = Tenant.objects.filter(pk=wanted, is_active=True).first()
    if tenant is None:
        membership = (
            Membership.objects.select_related("tenant")
            .filter(user=user, tenant__is_active=True)
            .order_by("role", "tenant__name")  # "owner" sorts before "subaccount"
            .first()
        )
        tenant = membership.tenant if membership else None
        if tenant is None and user.is_staff:
            tenant = Tenant.objects.filter(is_active=True).order_by("name").first()
    return tenant, membership


def scope_q(membership: Membership | None, field: str = "project_group") -> Q:
    """Rows a membership may see by project group: all of them, or those of its project groups."""
    if membership is None or membership.is_owner:
        return Q()
    group_ids = list(membership.project_groups.values_list("pk", flat=True))
    if not group_ids:
        return Q()
    return Q(**{f"{field}__in": group_ids})


def project_groups_visible(*, tenant: Tenant, membership: Membership | None) -> QuerySet[ProjectGroup]:
    return ProjectGroup.objects.filter(tenant=tenant).filter(scope_q(membership, field="pk"))


def members_of(*, tenant: Tenant) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(tenant=tenant)
        .select_related("user")
        .prefetch_related("project_groups")
        .order_by("role", "user__username")
    )


def operation_logs(*, tenant: Tenant) -> QuerySet[OperationLog]:
    return OperationLog.objects.filter(tenant=tenant).order_by("-created_at", "-pk")


def preference_get(*, user, key: str, default=None):
    """One of the user's remembered console choices, or `default`."""
    if user is None or not user.is_authenticated:
        return default
    values = UserPreference.objects.filter(user=user).values_list("values", flat=True).first() or {}
    return values.get(key, default)
