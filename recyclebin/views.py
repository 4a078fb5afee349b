"""The recycle bin page (seed 000 4.5, seed 002 "Recover / Expunge Image"): the tenant's deleted images,
restore and destroy one at a time or in batch. Thin views: parse, call a selector or service, render."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View

from images.catalog import PLATFORMS
from images.list_forms import BatchSelectionForm
from images.models import Image
from images.services.batch import is_uuid
from images.services.transitions import TransitionNotAllowed
from tenants.permissions import TenantRequiredMixin, can_manage, require_manage

from .filters import RecycleBinFilter
from .models import Mode
from .selectors import bin_image_get, bin_totals, images_in_bin
from .services import (
    RestoreRefused,
    image_expunge,
    image_restore,
    images_batch_expunge,
    images_batch_restore,
    policy_for,
)

PAGE_SIZES = (20, 50, 100)
DEFAULT_PAGE_SIZE = 20
NON_FILTER_PARAMS = {"page", "page_size", "ordering"}
FILTER_SELECTS = ("os_type", "architecture", "disk_format", "project_group", "status", "kind")


def _columns():
    return [
        ("name", _("Name / resource ID"), "name"),
        ("status", _("Status"), "status"),
        ("os_type", _("System type"), "os_type"),
        ("disk_format", _("Format"), "disk_format"),
        ("size", _("Size"), "size"),
        ("deleted", _("Deleted"), "deleted"),
        ("deleted_by", _("Deleted by"), None),
        ("purge_after", _("Expunged at"), "purge_after"),
        ("operations", _("Operations"), None),
    ]


def _page_size(request) -> int:
    try:
        size = int(request.GET.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def _sort_headers(request):
    current = request.GET.get("ordering", "")
    headers = []
    for key, title, param in _columns():
        direction = target = None
        if param:
            if current == param:
                direction, target = "asc", f"-{param}"
            elif current == f"-{param}":
                direction, target = "desc", param
            else:
                target = param
        headers.append({"key": key, "title": title, "ordering": target, "direction": direction})
    return headers


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def policy_text(policy) -> str:
    if policy.mode == Mode.IMMEDIATE:
        return _("Deletion policy: immediate. Images deleted from now on are destroyed at once.")
    if policy.mode == Mode.NEVER:
        return _("Deletion policy: never delete. Images stay here until someone destroys them.")
    days = policy.retention.total_seconds() / 86400
    return _("Deletion policy: delayed. Images are destroyed %(days)s days after they were deleted.") % {
        "days": f"{days:g}"
    }


def _can_act(request, image: Image) -> bool:
    return can_manage(request) and image.status == Image.Status.DELETED


class RecycleBinView(TenantRequiredMixin, View):
    def get(self, request):
        scope = images_in_bin(tenant=request.tenant, membership=request.membership)
        filterset = RecycleBinFilter(request.GET, queryset=scope, request=request)
        page = Paginator(filterset.qs, _page_size(request)).get_page(request.GET.get("page"))
        for image in page.object_list:
            image.can_act = _can_act(request, image)
        totals = bin_totals(tenant=request.tenant, membership=request.membership)
        filtered = any(request.GET.get(key) for key in request.GET if key not in NON_FILTER_PARAMS)
        form = filterset.form
        context = {
            "filterset": filterset,
            "form": form,
            "selects": {
                name: [
                    (str(v), label, str(v) == form.data.get(name, ""))
                    for v, label in form.fields[name].choices
                ]
                for name in FILTER_SELECTS
            },
            "page": page,
            "page_sizes": PAGE_SIZES,
            "page_size": page.paginator.per_page,
            "headers": _sort_headers(request),
            "filtered": filtered,
            "bin_is_empty": totals["images"] == 0,
            "totals": totals,
            "policy_text": policy_text(policy_for(tenant=request.tenant)),
            "can_manage": can_manage(request),
            "platforms": list(PLATFORMS),
            "poll": any(image.status == Image.Status.DELETING for image in page.object_list),
        }
        if request.htmx and request.htmx.target == "bin-results":
            return render(request, "recyclebin/results.html", context)
        return render(request, "recyclebin/list.html", context)


class _BinImageView(TenantRequiredMixin, View):
    def get_image(self, request, pk):
        image = bin_image_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage(request)
        return image


class RestoreView(_BinImageView):
    """POST: restore one image (not destructive, so no confirmation)."""

    def get(self, request, pk):
        self.get_image(request, pk)
        return HttpResponseNotAllowed(["POST"])

    def post(self, request, pk):
        image = self.get_image(request, pk)
        try:
            image = image_restore(image=image, actor=request.user, request=request)
        except RestoreRefused as exc:
            messages.error(request, " ".join(exc.messages))
        except TransitionNotAllowed as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("“%(name)s” was restored: it is %(status)s again.")
                % {"name": image.name, "status": image.get_status_display()},
            )
        return HttpResponseRedirect(_safe_next(request, reverse("recyclebin:list")))


class DestroyView(_BinImageView):
    """GET: the confirmation; POST: destroy the image (its data and row are removed by a job)."""

    def get(self, request, pk):
        image = self.get_image(request, pk)
        if image.status != Image.Status.DELETED:
            raise PermissionDenied(_("This image is already being destroyed."))
        next_url = _safe_next(request, reverse("recyclebin:list"))
        return render(request, "recyclebin/confirm_destroy.html", {"image": image, "next": next_url})

    def post(self, request, pk):
        image = self.get_image(request, pk)
        try:
            image_expunge(image=image, actor=request.user, request=request)
        except TransitionNotAllowed as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("“%(name)s” is being destroyed.") % {"name": image.name})
        return HttpResponseRedirect(_safe_next(request, reverse("recyclebin:list")))


class BatchView(TenantRequiredMixin, View):
    """Two steps, as the image list's batch delete: GET shows the chosen images, POST acts on them in
    one request and reports each image (done, or skipped and why)."""

    action = "restore"

    def _context(self, request, data, action):
        form = BatchSelectionForm(data)
        scope = images_in_bin(tenant=request.tenant, membership=request.membership)
        context = {
            "form": form,
            "action": action,
            "next": _safe_next(request, reverse("recyclebin:list")),
            "valid": form.is_valid() and not form.cleaned_data.get("all"),
        }
        if not context["valid"]:
            return context, scope, None
        ids = form.cleaned_data["ids"]
        found = {str(image.pk): image for image in scope.filter(pk__in=[i for i in ids if is_uuid(i)])}
        rows = [found[i] for i in dict.fromkeys(ids) if i in found]
        for image in rows:
            image.can_act = _can_act(request, image)
        context.update({"rows": rows, "ids": ids, "total": len(ids)})
        return context, scope, ids

    def get(self, request):
        action = self.action
        require_manage(request)
        context, _scope, ids = self._context(request, request.GET, action)
        template = "recyclebin/batch_confirm_dialog.html" if request.htmx else "recyclebin/batch_confirm.html"
        return render(request, template, context, status=200 if ids is not None else 400)

    def post(self, request):
        action = self.action
        require_manage(request)
        context, scope, ids = self._context(request, request.POST, action)
        if ids is None:
            return render(request, "recyclebin/batch_confirm.html", context, status=400)
        service = images_batch_restore if action == "restore" else images_batch_expunge
        result = service(
            tenant=request.tenant, scope=scope, image_ids=ids, actor=request.user, request=request
        )
        if request.htmx:
            response = render(
                request,
                "recyclebin/batch_result.html",
                {"result": result, "done": result.done, "skipped": result.skipped, "action": action},
            )
            response["HX-Trigger"] = "bin-changed"
            return response
        if result.done:
            if action == "restore":
                text = ngettext("%(count)d image restored.", "%(count)d images restored.", len(result.done))
            else:
                text = ngettext(
                    "%(count)d image is being destroyed.",
                    "%(count)d images are being destroyed.",
                    len(result.done),
                )
            messages.success(request, text % {"count": len(result.done)})
        if result.skipped:
            shown = "; ".join(f"{item.name or item.id}: {item.reason}" for item in result.skipped[:20])
            messages.warning(
                request,
                ngettext(
                    "%(count)d image was skipped: %(list)s",
                    "%(count)d images were skipped: %(list)s",
                    len(result.skipped),
                )
                % {"count": len(result.skipped), "list": shown},
            )
        return HttpResponseRedirect(context["next"])
