"""Base pieces of the JSON API: the tenant of an API request, resolved after DRF has authenticated."""

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.views import APIView

from .models import Membership
from .permissions import can_manage
from .selectors import resolve_current_tenant, tenants_for_user

TENANT_HEADER = "HTTP_X_TENANT"


class TenantAPIMixin:
    """Sets `request.tenant` and `request.membership` for API views.

    Token-authenticated requests carry no session, so the middleware could not know the user: resolve
    the tenant here. Users in several tenants choose one with the `X-Tenant: <id>` header.
    """

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        django_request = request._request
        wanted = request.META.get(TENANT_HEADER)
        if wanted:
            tenant = tenants_for_user(request.user).filter(pk=wanted if wanted.isdigit() else None).first()
            if tenant is None:
                raise exceptions.NotFound(_("No tenant with that id is open to this user (X-Tenant header)."))
            membership = Membership.objects.filter(tenant=tenant, user=request.user).first()
        else:
            tenant, membership = resolve_current_tenant(django_request)
        if tenant is None:
            raise exceptions.PermissionDenied(_("This user is not a member of any tenant."))
        request.tenant = django_request.tenant = tenant
        request.membership = django_request.membership = membership


class TenantAPIView(TenantAPIMixin, APIView):
    pass


def require_manage_api(request) -> None:
    """Refuse a change to a member who may only view. Called after the object was looked up, so that
    another tenant's id is a 404 whoever asks."""
    if not can_manage(request._request):
        raise exceptions.PermissionDenied(
            _("Your account may view this tenant's resources but not change them.")
        )
