"""Who may do what in the current tenant. The same checks hide buttons and guard the POSTs."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _


def can_view(request) -> bool:
    return request.user.is_authenticated and request.tenant is not None


def can_manage(request) -> bool:
    """Owners, sub-accounts with 'manage', and platform administrators may change things."""
    if not can_view(request):
        return False
    if request.user.is_staff:
        return True
    return request.membership is not None and request.membership.can_manage


def require_manage(request) -> None:
    if not can_manage(request):
        raise PermissionDenied(_("Your account may view this tenant's resources but not change them."))


class TenantRequiredMixin(LoginRequiredMixin):
    """A console page: logged in, working in a tenant. Without one there is nothing to show."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.tenant is None:
            from django.shortcuts import render

            return render(request, "console/no_tenant.html", status=403)
        return super().dispatch(request, *args, **kwargs)


class ManageRequiredMixin(TenantRequiredMixin):
    """Every method but GET and HEAD changes something and needs the 'manage' permission."""

    manage_methods_only = True

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.tenant is not None:
            if not self.manage_methods_only or request.method not in ("GET", "HEAD", "OPTIONS"):
                require_manage(request)
        return super().dispatch(request, *args, **kwargs)


def get_scoped_or_404(queryset, **lookup):
    """One row of an already tenant-scoped queryset; another tenant's row is simply not found."""
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError):
        raise Http404 from None
