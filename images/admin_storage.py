"""The image storages' admin with the pages that need images: data cleanup (images know which keys are
referenced), synchronise or migrate images to another storage, retrieve existing images.

`storage/admin.py` holds the storage's own pages; storage imports nothing of images, so the images app
registers the whole admin here.
"""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from storage.admin import ImageStorageAdmin as StorageAdmin
from storage.models import ImageStorage

from .admin_retrieve import retrieve_view
from .models import Image, ImageReplica
from .services import storage_data
from .services.storage_data import CopyMode


class ReplicaCopyForm(forms.Form):
    """Pick images stored on `storage` and a target storage of the same kind."""

    images = forms.ModelMultipleChoiceField(
        label=_("Images"), queryset=None, widget=forms.CheckboxSelectMultiple
    )
    target = forms.ModelChoiceField(label=_("Target storage"), queryset=None)

    def __init__(self, *args, storage: ImageStorage, images, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["images"].queryset = images
        self.fields["images"].label_from_instance = lambda image: f"{image.name} ({image.tenant}, {image.pk})"
        kinds = (
            [ImageStorage.Kind.STANDALONE, ImageStorage.Kind.SERVER]
            if storage.uses_chunks
            else [storage.kind]
        )
        self.fields["target"].queryset = ImageStorage.objects.filter(kind__in=kinds).exclude(pk=storage.pk)


@admin.register(ImageStorage)
class ImageStorageAdmin(StorageAdmin):
    actions = [*StorageAdmin.actions, "cleanup_selected"]

    @admin.action(description=_("Data cleanup of the selected storages"), permissions=["change"])
    def cleanup_selected(self, request, queryset):
        count = 0
        for storage in queryset:
            storage_data.storage_data_cleanup_enqueue(storage=storage, actor=request.user, request=request)
            count += 1
        self.message_user(
            request,
            ngettext(
                "Data cleanup started for %(count)d storage; the bytes freed appear on its page when it ends.",
                "Data cleanup started for %(count)d storages; the bytes freed appear on their pages when they end.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/cleanup/",
                wrap(require_POST(self.cleanup_view)),
                name="storage_imagestorage_cleanup",
            ),
            path("<int:pk>/images/", wrap(self.images_view), name="storage_imagestorage_images"),
            path("<int:pk>/retrieve/", wrap(self.retrieve_view), name="storage_imagestorage_retrieve"),
            *super().get_urls(),
        ]

    def cleanup_view(self, request, pk):
        storage = self._storage_or_404(request, pk)
        storage_data.storage_data_cleanup_enqueue(storage=storage, actor=request.user, request=request)
        self.message_user(
            request,
            _("Data cleanup of “%(name)s” started; the bytes freed appear here when it ends.")
            % {"name": storage.name},
            messages.SUCCESS,
        )
        return redirect(reverse("admin:storage_imagestorage_usage", args=[storage.pk]))

    def retrieve_view(self, request, pk):
        """Retrieve existing images (seed 003): import the image files under a directory of the mount path."""
        return retrieve_view(self, request, pk)

    def images_view(self, request, pk):
        """The images on this storage; selected ones are synchronised (standalone) or migrated
        (distributed) to another storage of the same kind, each in its own job."""
        storage = self._storage_or_404(request, pk)
        images = (
            Image.objects.filter(replicas__storage=storage, replicas__state=ImageReplica.State.READY)
            .select_related("tenant")
            .order_by("name", "pk")
        )
        mode = CopyMode.SYNC if storage.uses_chunks else CopyMode.MIGRATE
        form = ReplicaCopyForm(request.POST or None, storage=storage, images=images)
        if request.method == "POST" and form.is_valid():
            started, refused = storage_data.replicas_copy_start(
                images=form.cleaned_data["images"],
                source=storage,
                target=form.cleaned_data["target"],
                mode=mode,
                actor=request.user,
                request=request,
            )
            if started:
                self.message_user(
                    request,
                    ngettext(
                        "%(count)d image is being copied.", "%(count)d images are being copied.", len(started)
                    )
                    % {"count": len(started)},
                    messages.SUCCESS,
                )
            if refused:
                self.message_user(
                    request,
                    _("Not started: %(list)s")
                    % {"list": "; ".join(f"{image.name}: {reason}" for image, reason in refused)},
                    messages.ERROR,
                )
            return redirect(reverse("admin:storage_imagestorage_images", args=[storage.pk]))
        copies = (
            ImageReplica.objects.filter(image__in=images)
            .exclude(storage=storage)
            .select_related("storage", "image")
        )
        title = (
            _("Synchronise images of “%(name)s”")
            if mode == CopyMode.SYNC
            else _("Migrate images of “%(name)s”")
        )
        return TemplateResponse(
            request,
            "admin/storage/imagestorage/images.html",
            self._context(
                request,
                storage,
                title % {"name": storage.name},
                form=form,
                copies=copies,
                submit=_("Synchronise") if mode == CopyMode.SYNC else _("Migrate"),
            ),
        )
