"""Console pages of downloads and exports: the download dialog (create a link, copy it, revoke live
links), the export dialog, the Exported tab, and deleting an export.

Dialogs answer htmx requests with the dialog's content (shown in a modal on the list and detail pages)
and plain requests with a page of their own, so they work without JavaScript too.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View

from tenants.permissions import TenantRequiredMixin, can_manage

from ..models import DownloadSettings, ExportedImage, Image
from ..policy import can_download, can_export, can_revoke, is_own
from ..views.common import owned_or_404
from . import selectors, services


def _dialog(request, context: dict, *, status: int = 200):
    template = "images/downloads/dialog.html" if request.htmx else "images/downloads/page.html"
    return render(request, template, context, status=status)


def _download_context(request, image: Image, *, export: ExportedImage | None = None) -> dict:
    links = selectors.links_live(image=image)
    links = links.filter(export=export) if export is not None else links.filter(export__isnull=True)
    links = list(links)
    for link in links:
        link.can_revoke = can_revoke(request, link)
    if export is not None:
        target = {
            "filename": export.filename,
            "size": export.size,
            "md5": export.md5,
            "sha256": export.sha256,
            "format": export.format,
        }
        post_url = reverse("images:export_download", args=[export.pk])
    else:
        target = {
            "filename": services.image_filename(image),
            "size": image.size,
            "md5": image.md5,
            "sha256": image.sha256,
            "format": image.disk_format,
        }
        post_url = reverse("images:download", args=[image.pk])
    return {
        "image": image,
        "export": export,
        "target": target,
        "links": links,
        "post_url": post_url,
        "validity_hours": DownloadSettings.current().link_validity_hours,
    }


def _allowed_download(request, image: Image) -> None:
    if not can_download(request, image):
        if not is_own(request, image):
            raise PermissionDenied(
                _("This image is shared with your tenant by another one and is read-only here.")
            )
        raise PermissionDenied(_("Only available images can be downloaded."))


def _create_link(request, image: Image, context: dict, export=None):
    try:
        link, token = services.link_create(image=image, actor=request.user, export=export, request=request)
    except services.DownloadRefused as error:
        context["error"] = error.message
        return _dialog(request, context, status=409)
    context = _download_context(request, image, export=export)
    context["new_link"] = link
    context["new_url"] = request.build_absolute_uri(services.link_path(link, token))
    return _dialog(request, context, status=201 if not request.htmx else 200)


class DownloadDialogView(TenantRequiredMixin, View):
    """An image's download dialog; POST creates a link and shows it once."""

    def get(self, request, pk):
        image = owned_or_404(request, pk)
        _allowed_download(request, image)
        return _dialog(request, _download_context(request, image))

    def post(self, request, pk):
        image = owned_or_404(request, pk)
        _allowed_download(request, image)
        return _create_link(request, image, _download_context(request, image))


class LinkRevokeView(TenantRequiredMixin, View):
    def post(self, request, pk, link_pk):
        image = owned_or_404(request, pk)
        link = selectors.link_get(image=image, pk=link_pk)
        if not can_revoke(request, link):
            raise PermissionDenied(_("Only the link's maker or an account that may manage can revoke it."))
        services.link_revoke(link=link, actor=request.user, request=request)
        context = _download_context(request, image, export=link.export)
        context["revoked"] = link
        return _dialog(request, context)


class ExportDialogView(TenantRequiredMixin, View):
    """Choose a format; "Export" queues the job, "Export and download" waits for it, then offers a link."""

    def _image(self, request, pk):
        image = owned_or_404(request, pk)
        if not can_export(request, image):
            if not can_manage(request):
                raise PermissionDenied(_("Your account may download images but not export them."))
            raise PermissionDenied(_("Only available system and volume images can be exported."))
        return image

    def _context(self, request, image, **extra):
        existing = {e.format: e for e in ExportedImage.objects.filter(image=image)}
        formats = [
            (value, label, existing.get(value))
            for value, label in ExportedImage.Format.choices
            if value in ExportedImage.IMAGE_FORMATS
        ]
        return {"image": image, "formats": formats, **extra}

    def get(self, request, pk):
        image = self._image(request, pk)
        template = (
            "images/downloads/export_dialog.html" if request.htmx else "images/downloads/export_page.html"
        )
        return render(request, template, self._context(request, image))

    def post(self, request, pk):
        image = self._image(request, pk)
        fmt = request.POST.get("format", "")
        try:
            export = services.export_create(image=image, fmt=fmt, actor=request.user, request=request)
        except (services.DownloadRefused, ValidationError) as error:
            message = getattr(error, "message", None) or " ".join(
                m for messages_ in getattr(error, "message_dict", {}).values() for m in messages_
            )
            template = (
                "images/downloads/export_dialog.html" if request.htmx else "images/downloads/export_page.html"
            )
            return render(
                request, template, self._context(request, image, error=message, chosen=fmt), status=409
            )
        if request.POST.get("then") == "download":
            target = reverse("images:export_download", args=[export.pk])
        else:
            messages.success(
                request,
                _("Exporting “%(name)s” as %(format)s; it appears under Exported when it is ready.")
                % {"name": image.name, "format": export.format},
            )
            target = reverse("images:exported")
        if request.htmx:
            response = HttpResponse("")
            response["HX-Redirect"] = target
            return response
        return HttpResponseRedirect(target)


class ExportDownloadView(TenantRequiredMixin, View):
    """An export's download dialog. While the export runs it shows its progress and polls; when the file
    is ready it offers the link (what "Export and download" leads to)."""

    def get(self, request, pk):
        export = selectors.export_get(tenant=request.tenant, membership=request.membership, pk=pk)
        _allowed_download(request, export.image)
        if export.status != ExportedImage.Status.READY:
            template = "images/downloads/export_wait.html"
            return render(request, template, {"export": export, "image": export.image})
        return _dialog(request, _download_context(request, export.image, export=export))

    def post(self, request, pk):
        export = selectors.export_get(tenant=request.tenant, membership=request.membership, pk=pk)
        image = export.image
        _allowed_download(request, image)
        return _create_link(request, image, _download_context(request, image, export=export), export=export)


class ExportedListView(TenantRequiredMixin, View):
    """The list's Exported tab: every export of the tenant's images this account may see."""

    def get(self, request):
        exports = list(selectors.exports_visible(tenant=request.tenant, membership=request.membership)[:500])
        manage = can_manage(request)
        context = {
            "exports": exports,
            "can_manage": manage,
            "busy": any(e.status == ExportedImage.Status.EXPORTING for e in exports),
            "tab": "exported",
        }
        if request.htmx and request.GET.get("part") == "table":
            return render(request, "images/downloads/exported_table.html", context)
        return render(request, "images/downloads/exported.html", context)


class ExportDeleteView(TenantRequiredMixin, View):
    def _export(self, request, pk):
        export = selectors.export_get(tenant=request.tenant, membership=request.membership, pk=pk)
        if not can_manage(request):
            raise PermissionDenied(_("Your account may download images but not delete exports."))
        return export

    def get(self, request, pk):
        return render(request, "images/downloads/export_delete.html", {"export": self._export(request, pk)})

    def post(self, request, pk):
        export = self._export(request, pk)
        services.export_delete(export=export, actor=request.user, request=request)
        messages.success(
            request,
            _("The %(format)s export of “%(name)s” was deleted; the image itself stays.")
            % {"format": export.format, "name": export.image.name},
        )
        return HttpResponseRedirect(reverse("images:exported"))
