from django.conf import settings

from tenants.permissions import can_manage
from tenants.selectors import tenants_for_user


def console(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    tenants = list(tenants_for_user(user).only("pk", "name")[:200])
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "switchable_tenants": tenants if len(tenants) > 1 else [],
        "can_manage": can_manage(request) if hasattr(request, "tenant") else False,
        "LANGUAGES": settings.LANGUAGES,
    }
