"""Row and detail actions on one image: edit name and remarks, labels, enable/disable, sharing, delete.

Each looks the image up through the tenant-scoped selector first (another tenant's image is a 404 for
everyone), then checks that this user may change it. GET shows a form or a confirmation, POST changes
and redirects back (to `next` when it is a safe local URL)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View

from tenants.permissions import TenantRequiredMixin

from ..list_forms import ImageEditForm, ImageLabelsForm, ImageSharingForm
from ..models import Image
from ..policy import can_share_globally, deletion_wording
from ..selectors import image_get
from ..services import (
    TransitionNotAllowed,
    image_delete,
    image_set_enabled,
    image_set_sharing,
    image_update,
)
from ..services.lifecycle import DELETABLE
from .image_list import _safe_next, require_own_manageable


def _back(request, image) -> str:
    """Where to go after an action: `next`, else the image's page."""
    return _safe_next(request, reverse("images:detail", args=[image.pk]))


class _ImageActionView(TenantRequiredMixin, View):
    template_name = ""

    def get_image(self, request, pk):
        image = image_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_own_manageable(request, image)
        return image

    def render_form(self, request, image, form, status=200):
        return render(
            request,
            self.template_name,
            {
                "image": image,
                "form": form,
                "next": _back(request, image),
                "deletion": deletion_wording(request.tenant),
            },
            status=status,
        )


class ImageEditView(_ImageActionView):
    """Name and remarks, in any status (seed 000 4.6)."""

    template_name = "images/actions/edit.html"

    def get(self, request, pk):
        image = self.get_image(request, pk)
        form = ImageEditForm(initial={"name": image.name, "description": image.description})
        return self.render_form(request, image, form)

    def post(self, request, pk):
        image = self.get_image(request, pk)
        form = ImageEditForm(request.POST)
        if not form.is_valid():
            return self.render_form(request, image, form, status=400)
        image_update(image=image, actor=request.user, request=request, **form.cleaned_data)
        messages.success(request, _("“%(name)s” saved.") % {"name": form.cleaned_data["name"]})
        return HttpResponseRedirect(_back(request, image))


class ImageLabelsView(_ImageActionView):
    template_name = "images/actions/labels.html"

    def get(self, request, pk):
        image = self.get_image(request, pk)
        return self.render_form(request, image, ImageLabelsForm(initial={"labels": ", ".join(image.labels)}))

    def post(self, request, pk):
        image = self.get_image(request, pk)
        form = ImageLabelsForm(request.POST)
        if not form.is_valid():
            return self.render_form(request, image, form, status=400)
        image_update(image=image, labels=form.cleaned_data["labels"], actor=request.user, request=request)
        messages.success(request, _("Labels of “%(name)s” saved.") % {"name": image.name})
        return HttpResponseRedirect(_back(request, image))


class ImageEnableView(_ImageActionView):
    """POST `enabled=1` or `enabled=0`. A disabled image cannot be used to create VMs."""

    def get(self, request, pk):
        self.get_image(request, pk)
        return HttpResponseNotAllowed(["POST"])

    def post(self, request, pk):
        image = self.get_image(request, pk)
        enabled = request.POST.get("enabled") in ("1", "true", "on")
        image_set_enabled(image=image, enabled=enabled, actor=request.user, request=request)
        if enabled:
            messages.success(request, _("“%(name)s” is enabled.") % {"name": image.name})
        else:
            messages.success(
                request,
                _("“%(name)s” is disabled: it cannot be used to create VMs; existing VMs are not affected.")
                % {"name": image.name},
            )
        return HttpResponseRedirect(_back(request, image))


class ImageSharingView(_ImageActionView):
    """Seed 002's sharing modes; sharing globally is for platform administrators."""

    template_name = "images/actions/sharing.html"

    def _form(self, request, image, data=None):
        initial = {"sharing": image.sharing, "shared_with": list(image.shared_with.all())}
        return ImageSharingForm(data, initial=initial, image=image, allow_global=can_share_globally(request))

    def get(self, request, pk):
        image = self.get_image(request, pk)
        return self.render_form(request, image, self._form(request, image))

    def post(self, request, pk):
        image = self.get_image(request, pk)
        form = self._form(request, image, request.POST)
        if not form.is_valid():
            return self.render_form(request, image, form, status=400)
        try:
            image_set_sharing(
                image=image,
                sharing=form.cleaned_data["sharing"],
                tenants=form.cleaned_data["shared_with"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return self.render_form(request, image, form, status=400)
        messages.success(request, _("Sharing of “%(name)s” saved.") % {"name": image.name})
        return HttpResponseRedirect(_back(request, image))


class ImageDeleteView(_ImageActionView):
    """Confirm, then move the image to the recycle bin (available and failed images only)."""

    template_name = "images/actions/delete.html"

    def get(self, request, pk):
        image = self.get_image(request, pk)
        if image.status not in DELETABLE:
            message = _("“%(name)s” is %(status)s; only available or failed images can be deleted.") % {
                "name": image.name,
                "status": image.status_label(),
            }
            return render(
                request, self.template_name, {"image": image, "error": message, "next": _back(request, image)}
            )
        return self.render_form(request, image, None)

    def post(self, request, pk):
        image = self.get_image(request, pk)
        try:
            image = image_delete(image=image, actor=request.user, request=request)
        except (TransitionNotAllowed, ValidationError) as exc:
            if isinstance(exc, TransitionNotAllowed):
                message = _("“%(name)s” is %(status)s; only available or failed images can be deleted.") % {
                    "name": image.name,
                    "status": exc.image.get_status_display(),
                }
            else:
                message = " ".join(exc.messages)
            messages.error(request, message)
            return render(
                request,
                self.template_name,
                {
                    "image": image,
                    "error": message,
                    "next": _back(request, image),
                    "deletion": deletion_wording(request.tenant),
                },
                status=409,
            )
        if image.status == Image.Status.DELETING:
            messages.success(request, _("“%(name)s” is being destroyed.") % {"name": image.name})
        else:
            messages.success(request, _("“%(name)s” was moved to the recycle bin.") % {"name": image.name})
        fallback = reverse("images:iso_list" if image.kind == "iso" else "images:list")
        target = _safe_next(request, fallback)
        # The image's own page no longer exists for the list; go back to the list instead.
        if target.rstrip("/").endswith(str(image.pk)):
            target = fallback
        return HttpResponseRedirect(target)
