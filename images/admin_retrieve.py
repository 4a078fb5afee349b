"""The admin page of "Retrieve existing images" on a standalone storage (seed 003).

Two steps: choose a directory of the mount path and the tenant the images will belong to, see the image
files found there, then import the chosen ones (each through the import pipeline, in its own job).
`admin_storage.py` routes `<pk>/retrieve/` here.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from storage.backends.base import StorageError
from storage.models import ImageStorage
from tenants.models import Tenant

from .services.retrieve import storage_images_find, storage_images_retrieve


class RetrieveImagesForm(forms.Form):
    directory = forms.CharField(
        label=gettext_lazy("Directory"),
        required=False,
        max_length=1024,
        help_text=gettext_lazy(
            "A directory of the storage's mount path, relative to it (empty: the mount path itself). Image "
            "files under it (.qcow2, .img, .raw, .vmdk, .vhd, .vhdx, .ova, .iso) are imported; the files stay."
        ),
    )
    tenant = forms.ModelChoiceField(
        label=gettext_lazy("Tenant"),
        queryset=Tenant.objects.order_by("name"),
        help_text=gettext_lazy("The tenant the retrieved images belong to (its quota applies)."),
    )


def retrieve_view(model_admin, request, pk):
    storage = model_admin._storage_or_404(request, pk)
    change_url = reverse("admin:storage_imagestorage_change", args=[storage.pk])
    if storage.kind not in (ImageStorage.Kind.STANDALONE, ImageStorage.Kind.SERVER):
        model_admin.message_user(
            request, _("Only a standalone storage has a mount path to retrieve images from."), messages.ERROR
        )
        return redirect(change_url)
    form = RetrieveImagesForm(request.POST or None)
    found = None
    if request.method == "POST" and form.is_valid():
        directory = form.cleaned_data["directory"]
        try:
            found = storage_images_find(storage=storage, directory=directory)
        except ValidationError as error:
            form.add_error("directory", error)
        except StorageError as error:  # a storage server that cannot be reached
            form.add_error(None, str(error))
        else:
            if "retrieve" in request.POST:
                try:
                    started, refused = storage_images_retrieve(
                        storage=storage,
                        directory=directory,
                        tenant=form.cleaned_data["tenant"],
                        actor=request.user,
                        request=request,
                        paths=set(request.POST.getlist("path")),
                    )
                except StorageError as error:  # the storage server went away meanwhile
                    model_admin.message_user(request, str(error), messages.ERROR)
                    return redirect(change_url)
                if started:
                    model_admin.message_user(
                        request,
                        ngettext(
                            "%(count)d image is being imported.",
                            "%(count)d images are being imported.",
                            len(started),
                        )
                        % {"count": len(started)},
                        messages.SUCCESS,
                    )
                if refused:
                    model_admin.message_user(
                        request,
                        _("Not imported: %(list)s")
                        % {"list": "; ".join(f"{item.path.name}: {reason}" for item, reason in refused)},
                        messages.WARNING,
                    )
                if not started and not refused:
                    model_admin.message_user(request, _("No file was chosen."), messages.WARNING)
                return redirect(change_url)
    return TemplateResponse(
        request,
        "images/admin/retrieve.html",
        model_admin._context(
            request,
            storage,
            _("Retrieve existing images into “%(name)s”") % {"name": storage.name},
            form=form,
            found=found,
            mount_path=f"{storage.host}:{storage.mount_path}" if storage.is_server else storage.mount_path,
        ),
    )
