"""An image's detail page: its properties, MD5 and SHA256, its replicas and its operation log; while it
is importing, the summary refreshes itself (htmx) until it settles."""

from django.shortcuts import render
from django.views import View

from tenants.permissions import TenantRequiredMixin, can_manage
from tenants.selectors import operation_logs

from ..hooks import detail_sections
from ..models import ImageReplica
from ..policy import deletion_wording, row_actions
from ..selectors import image_get

LOG_ROWS = 50


def _context(request, image) -> dict:
    own = image.tenant_id == request.tenant.pk
    return {
        "image": image,
        "actions": row_actions(request, image),
        "deletion": deletion_wording(request.tenant),
        "can_manage": can_manage(request),
        "own": own,
        "nav_section": "iso" if image.kind == image.Kind.ISO else "images",
        "session": getattr(image, "upload", None) if own else None,
    }


class ImageDetailView(TenantRequiredMixin, View):
    def get(self, request, pk):
        image = image_get(tenant=request.tenant, membership=request.membership, pk=pk)
        context = _context(request, image)
        if context["own"]:
            context["replicas"] = ImageReplica.objects.filter(image=image).select_related("storage")
            context["events"] = operation_logs(tenant=request.tenant).filter(
                target_type="image", target_id=str(image.pk)
            )[:LOG_ROWS]
            context["sections"] = detail_sections(request=request, image=image)
        return render(request, "images/detail.html", context)


class ImageSummaryView(TenantRequiredMixin, View):
    """The detail page's summary alone, polled while the image is in a transitional status."""

    def get(self, request, pk):
        image = image_get(tenant=request.tenant, membership=request.membership, pk=pk)
        return render(request, "images/detail_summary.html", _context(request, image))
