"""Images other tenants share with this one, awaiting its consent: accept (the image appears in the
list, usable) or reject."""

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View

from tenants.permissions import TenantRequiredMixin, require_manage

from ..models import ImageShare
from ..selectors import image_offered_get, images_offered
from ..services import image_share_answer


class SharedWithUsView(TenantRequiredMixin, View):
    def get(self, request):
        offered = images_offered(
            tenant=request.tenant, statuses=[ImageShare.Status.PENDING, ImageShare.Status.REJECTED]
        )
        shares = {
            share.image_id: share
            for share in ImageShare.objects.filter(tenant=request.tenant, image__in=offered)
        }
        rows = [(image, shares.get(image.pk)) for image in offered.order_by("-created_at")[:200]]
        return render(request, "images/shared_with_us.html", {"rows": rows})


class ShareAnswerView(TenantRequiredMixin, View):
    """POST status=accepted|rejected for an image shared with this tenant."""

    def post(self, request, pk):
        image = image_offered_get(tenant=request.tenant, pk=pk)  # before the permission: a 404 for others
        require_manage(request)
        status = request.POST.get("status", "")
        if status not in (ImageShare.Status.ACCEPTED, ImageShare.Status.REJECTED):
            messages.error(request, _("Choose accept or reject."))
        else:
            image_share_answer(
                image=image, tenant=request.tenant, status=status, actor=request.user, request=request
            )
            if status == ImageShare.Status.ACCEPTED:
                messages.success(
                    request, _("“%(name)s” accepted: it is in your image list now.") % {"name": image.name}
                )
            else:
                messages.success(request, _("“%(name)s” rejected.") % {"name": image.name})
        return HttpResponseRedirect(reverse("images:shared_with_us"))
