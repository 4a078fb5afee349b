from django.shortcuts import render
from django.views import View

from tenants.permissions import TenantRequiredMixin

from . import selectors


class StorageListView(TenantRequiredMixin, View):
    """Read-only for tenants: the storages they may import into, with usage drawn as bars."""

    def get(self, request):
        rows = [
            (storage, selectors.usage_bars(selectors.storage_usage(storage=storage)))
            for storage in selectors.storage_list_for_tenant(tenant=request.tenant)
        ]
        return render(request, "storage/storage_list.html", {"rows": rows})
