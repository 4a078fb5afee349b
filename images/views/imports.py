"""The import wizard, the page that (re)sends a local file, and cancel.

The wizard validates with ImageImportForm and creates the image with `image_import_create`. For a local
file its script posts the form without the file, then sends the file with tus-js-client to the tus
endpoint (the progress bar, resume after a dropped network, Cancel); a page reload lands on the upload
page, where choosing the same file again resumes at the server's offset. A URL import needs no script.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View

from tenants.permissions import ManageRequiredMixin, TenantRequiredMixin, require_manage

from .. import catalog, conf
from ..forms import ImageImportForm
from ..models import Image
from ..selectors import image_get
from ..services import image_import_create, import_cancel
from ..services.transitions import TransitionNotAllowed
from .common import owned_or_404

# Where a refusal of image_import_create (quota, space, size) is shown in the wizard.
ERROR_FIELDS = {"storage_full": "storage", "staging_full": "file_size", "too_large": "file_size"}


def upload_messages() -> dict:
    """The upload script's texts, translated here (the script has no catalogue of its own)."""
    return {
        "of": _("%(done)s of %(total)s"),
        "speed": _("%(speed)s/s"),
        "left": _("about %(time)s left"),
        "done": _("Upload complete: the image is being checked and stored."),
        "cancelled": _("The upload was cancelled."),
        "failed": _("The upload failed: %(error)s"),
        "retrying": _("The connection dropped; resuming where the server stopped…"),
        "choose": _("Choose the image file to upload."),
        "wrongFile": _(
            "This is not the file being uploaded: it has %(size)s bytes, the upload expects %(expected)s."
        ),
        "confirmCancel": _(
            "Cancel this import? What was received so far is discarded; the image stays as “Cancelled” "
            "until you delete it."
        ),
    }


def _initial_from(image: Image, *, iso: bool) -> dict:
    session = getattr(image, "upload", None)
    initial = {
        "name": image.name,
        "description": image.description,
        "os_type": image.os_type,
        "architecture": image.architecture,
        "boot_mode": image.boot_mode,
        "csm": image.csm,
        "platform": image.platform,
        "os_version": image.os_version,
        "virtio": image.virtio,
        "labels": list(image.labels or []),
        "project_group": image.project_group_id,
        "storage": image.storage_id,
        "checksum": image.checksum_expected if image.checksum_source == "typed" else image.expected_sha256,
        "checksum_algorithm": image.checksum_algorithm or "sha256",
        "checksum_of": image.checksum_of or ("image" if image.expected_sha256 else "sent"),
        "checksum_file_url": image.checksum_file_url,
        "checksum_signature_url": image.checksum_signature_url,
        "import_method": "url" if image.source == Image.Source.URL else "upload",
        "url": session.source_url if session is not None else "",
    }
    if not iso:
        initial.update(
            kind=image.kind,
            disk_format=image.source_format or image.disk_format,
            cloud_init=image.cloud_init,
            qemu_ga=image.qemu_ga,
            hot_upgrade=image.hot_upgrade,
            target_size_gb=image.target_size // catalog.GiB if image.target_size else None,
        )
    return initial


def wants_json(request) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


class ImageImportView(ManageRequiredMixin, View):
    manage_methods_only = False
    template_name = "images/import.html"

    def is_iso(self, request) -> bool:
        if request.method == "GET" and request.GET.get("from"):
            image = image_get(tenant=request.tenant, membership=request.membership, pk=request.GET["from"])
            return image.kind == Image.Kind.ISO
        return (request.POST.get("iso") or request.GET.get("kind")) in ("iso", "1")

    def form(self, request, data=None):
        return ImageImportForm(
            data,
            tenant=request.tenant,
            membership=request.membership,
            user=request.user,
            iso=self.is_iso(request),
        )

    def render_form(self, request, form, *, status=200):
        iso = self.is_iso(request)
        context = {
            "form": form,
            "iso": iso,
            "nav_section": "iso" if iso else "images",
            "matrix": catalog.version_matrix(),
            "upload_messages": upload_messages(),
            "list_url": reverse("images:iso_list" if iso else "images:list"),
        }
        if wants_json(request):
            return render(request, "images/import_fields.html", context, status=status)
        return render(request, self.template_name, context, status=status)

    def get(self, request):
        form = self.form(request)
        again = request.GET.get("from")
        if again:
            # "Import again" after a failed or cancelled import: the wizard filled in with that image's
            # settings (a URL's password was never kept; the file is chosen again).
            image = image_get(tenant=request.tenant, membership=request.membership, pk=again)
            form.initial.update(_initial_from(image, iso=form.iso))
        return self.render_form(request, form)

    def post(self, request):
        form = self.form(request, request.POST)
        valid = form.is_valid()
        if valid and wants_json(request) and form.cleaned_data.get("import_method") != "url":
            if form.cleaned_data.get("file_size") is None:
                form.add_error("file_size", _("Choose the image file to upload."))
                valid = False
        if not valid:
            return self.render_form(request, form, status=400 if wants_json(request) else 200)
        try:
            image = image_import_create(
                tenant=request.tenant,
                fields=form.image_fields(),
                actor=request.user,
                request=request,
                upload_length=form.cleaned_data.get("file_size"),
                url=form.cleaned_data.get("url", ""),
            )
        except ValidationError as error:
            field = ERROR_FIELDS.get(getattr(error, "code", None))
            form.add_error(field, error)
            return self.render_form(request, form, status=400 if wants_json(request) else 200)
        list_url = reverse("images:iso_list" if image.kind == Image.Kind.ISO else "images:list")
        if image.source == Image.Source.URL:
            messages.success(request, _("“%(name)s” is being imported from its URL.") % {"name": image.name})
            if wants_json(request):
                return JsonResponse({"id": str(image.pk), "redirect": list_url})
            return HttpResponseRedirect(list_url)
        upload_page = reverse("images:upload", args=[image.pk])
        if wants_json(request):
            return JsonResponse(
                {
                    "id": str(image.pk),
                    "name": image.name,
                    "upload_page": upload_page,
                    "list_url": list_url,
                    "tus_endpoint": reverse("api-uploads"),
                    "chunk_size": conf.upload_chunk_bytes(),
                }
            )
        return HttpResponseRedirect(upload_page)


class ImageUploadView(TenantRequiredMixin, View):
    """Send (or send again, after a reload) the file of an image waiting for its upload."""

    def get(self, request, pk):
        # Look up first: another tenant's image is "not found" even for someone who may not upload.
        image = owned_or_404(request, pk)
        require_manage(request)
        session = getattr(image, "upload", None)
        waiting = (
            image.status == Image.Status.UPLOADING
            and image.source == Image.Source.UPLOAD
            and image.stage in (Image.Stage.QUEUED, Image.Stage.RECEIVING)
        )
        upload_url = ""
        if waiting and session is not None and session.length is not None:
            upload_url = request.build_absolute_uri(reverse("api-upload", args=[session.pk]))
        return render(
            request,
            "images/upload.html",
            {
                "image": image,
                "own": True,
                "nav_section": "iso" if image.kind == Image.Kind.ISO else "images",
                "session": session,
                "waiting": waiting,
                "upload_url": upload_url,
                "chunk_size": conf.upload_chunk_bytes(),
                "upload_messages": upload_messages(),
                "list_url": reverse("images:iso_list" if image.kind == Image.Kind.ISO else "images:list"),
            },
        )


class ImageCancelView(TenantRequiredMixin, View):
    """POST: cancel an import (the list's "Cancel upload", the detail page's button)."""

    def post(self, request, pk):
        image = owned_or_404(request, pk)
        require_manage(request)
        try:
            import_cancel(image=image, actor=request.user, request=request)
            messages.success(request, _("The import of “%(name)s” was cancelled.") % {"name": image.name})
        except TransitionNotAllowed as error:
            messages.error(request, str(error))
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("images:detail", args=[image.pk])
        return HttpResponseRedirect(target)
