"""Image storages in Django admin: add (kind first; a storage server in steps, admin_server_wizard.py), edit, modify configuration, update password,
reconnect, usage, delete (refused while images are stored).

The images app registers this admin with the pages that need images (data cleanup, sync or migrate
images, retrieve existing images): `images/admin_storage.py`.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from . import selectors, services
from .admin_server_wizard import ServerAddWizard, apply_errors
from .forms import ADD_FORMS, CONFIGURE_FORMS, ServerPasswordForm, UpdatePasswordForm
from .models import ImageStorage
from .services import COMMON_CONFIGURATION_FIELDS, CONFIGURATION_FIELDS


class ImageStorageAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "data_center", "state_column", "enabled", "location", "usage_column"]
    list_filter = ["kind", "state", "enabled", "data_center"]
    search_fields = ["name", "description", "mount_path", "endpoint_url", "bucket", "host"]
    ordering = ["name", "pk"]
    actions = ["reconnect_selected", "delete_selected"]
    fields = ["name", "description", "data_center", "enabled"]
    readonly_fields = [
        "kind",
        "location",
        "state",
        "state_reason",
        "settings_summary",
        "server_summary",
        "chunk_names_summary",
        "last_cleanup",
    ]
    change_form_template = "admin/storage/imagestorage/change_form.html"

    def get_fields(self, request, obj=None):
        return self.fields + (self.readonly_fields if obj else [])

    # Columns
    @admin.display(description=_("state"), ordering="state")
    def state_column(self, obj):
        if obj.state == ImageStorage.State.CONNECTED:
            return obj.get_state_display()
        return format_html(
            '{} <span title="{}">⚠ {}</span>',
            obj.get_state_display(),
            obj.state_reason,
            obj.state_reason[:80],
        )

    @admin.display(description=_("location"))
    def location(self, obj):
        if obj.kind == ImageStorage.Kind.STANDALONE:
            return obj.mount_path
        if obj.kind == ImageStorage.Kind.SERVER:
            return f"{obj.ssh_username}@{obj.host}:{obj.ssh_port} {obj.mount_path}"
        return f"{obj.endpoint_url} / {obj.bucket}"

    @admin.display(description=_("usage"))
    def usage_column(self, obj):
        usage = selectors.storage_usage(storage=obj)
        if usage is None:
            return "—"
        return _("%(used)s used, %(free)s free of %(total)s") % {
            "used": filesizeformat(usage.used),
            "free": filesizeformat(usage.free),
            "total": filesizeformat(usage.total),
        }

    @admin.display(description=_("configuration"))
    def settings_summary(self, obj):
        return _(
            "reserved %(reserved)s, upload concurrency %(up)d, download concurrency %(down)d, target format %(fmt)s"
        ) % {
            "reserved": filesizeformat(obj.reserved_bytes),
            "up": obj.upload_concurrency,
            "down": obj.download_concurrency,
            "fmt": obj.effective_target_format,
        }

    @admin.display(description=_("storage server"))
    def server_summary(self, obj):
        if obj.kind != ImageStorage.Kind.SERVER:
            return "—"
        from .backends.server import host_key_fingerprint

        method = obj.get_addition_method_display()
        if obj.disk:
            method = f"{method} ({obj.disk})"
        return _(
            "host key %(fingerprint)s; addition method %(method)s; image sync network %(sync)s; data network %(data)s"
        ) % {
            "fingerprint": host_key_fingerprint(obj.ssh_host_key) or "—",
            "method": method,
            "sync": obj.sync_network or "—",
            "data": obj.data_network or "—",
        }

    @admin.display(description=_("chunk names"))
    def chunk_names_summary(self, obj):
        if not obj.uses_chunks:
            return "—"
        if obj.chunk_names == ImageStorage.ChunkNames.SHA256:
            return _("SHA256 (convert to BLAKE3 with manage.py convertchunks %(name)s)") % {"name": obj.name}
        return obj.get_chunk_names_display()

    @admin.display(description=_("last data cleanup"))
    def last_cleanup(self, obj):
        if obj.last_cleanup_at is None:
            return "—"
        return _("%(when)s, %(freed)s freed") % {
            "when": obj.last_cleanup_at.strftime("%Y-%m-%d %H:%M"),
            "freed": filesizeformat(obj.last_cleanup_bytes),
        }

    # Edit name and description: the standard change form, saved through the service.
    def save_model(self, request, obj, form, change):
        services.storage_update(
            storage=obj,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            data_center=form.cleaned_data["data_center"],
            enabled=form.cleaned_data["enabled"],
            actor=request.user,
            request=request,
        )

    # Delete: refused while images are stored, naming them; one storage or many.
    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, _protected = super().get_deleted_objects(objs, request)
        protected = []
        for storage in objs:
            blockers = services.storage_delete_blockers(storage=storage)
            protected.extend(
                _("Storage “%(storage)s” holds image “%(image)s”") % {"storage": storage.name, "image": name}
                for name in blockers
            )
        if protected:
            # Our refusal names the images; Django's "no permission to delete images" would hide it.
            perms_needed = set()
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        services.storage_delete(storage=obj, actor=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for storage in queryset:
            services.storage_delete(storage=storage, actor=request.user, request=request)

    # Bulk actions
    @admin.action(description=_("Reconnect the selected storages"), permissions=["change"])
    def reconnect_selected(self, request, queryset):
        down = []
        for storage in queryset:
            services.storage_reconnect(storage=storage, actor=request.user, request=request)
            if storage.state != ImageStorage.State.CONNECTED:
                down.append(f"{storage.name}: {storage.state_reason}")
        connected = queryset.count() - len(down)
        if connected:
            self.message_user(
                request,
                ngettext("%(count)d storage is connected.", "%(count)d storages are connected.", connected)
                % {"count": connected},
                messages.SUCCESS,
            )
        for line in down:
            self.message_user(request, _("Disconnected: %(detail)s") % {"detail": line}, messages.ERROR)

    # Extra pages
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/configure/", wrap(self.configure_view), name="storage_imagestorage_configure"),
            path("<int:pk>/password/", wrap(self.password_view), name="storage_imagestorage_password"),
            path(
                "<int:pk>/reconnect/",
                wrap(require_POST(self.reconnect_view)),
                name="storage_imagestorage_reconnect",
            ),
            path("<int:pk>/usage/", wrap(self.usage_view), name="storage_imagestorage_usage"),
            *super().get_urls(),
        ]

    def _context(self, request, storage, title, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": storage,
            "title": title,
            "has_view_permission": self.has_view_permission(request, storage),
            **extra,
        }

    def _storage_or_404(self, request, pk, *, change=True):
        storage = get_object_or_404(ImageStorage, pk=pk)
        allowed = (
            self.has_change_permission(request, storage)
            if change
            else self.has_view_permission(request, storage)
        )
        if not allowed:
            raise PermissionDenied
        return storage

    def _change_url(self, storage):
        return reverse("admin:storage_imagestorage_change", args=[storage.pk])

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        kind = request.GET.get("kind")
        if kind == ImageStorage.Kind.SERVER:
            return ServerAddWizard(self, request).dispatch()
        if kind not in ADD_FORMS:
            return TemplateResponse(
                request,
                "admin/storage/imagestorage/choose_kind.html",
                self._context(request, None, _("Select image storage type"), kinds=ImageStorage.Kind.choices),
            )
        form = ADD_FORMS[kind](request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                storage = services.storage_create(
                    kind=kind, actor=request.user, request=request, **form.cleaned_data
                )
            except ValidationError as error:
                apply_errors(form, error)
            else:
                level = (
                    messages.SUCCESS if storage.state == ImageStorage.State.CONNECTED else messages.WARNING
                )
                self.message_user(
                    request,
                    _("Storage “%(name)s” was added: %(state)s. %(reason)s")
                    % {
                        "name": storage.name,
                        "state": storage.get_state_display(),
                        "reason": storage.state_reason,
                    },
                    level,
                )
                return redirect(self._change_url(storage))
        return TemplateResponse(
            request,
            "admin/storage/imagestorage/form.html",
            self._context(
                request,
                None,
                _("Add %(kind)s image storage") % {"kind": ImageStorage.Kind(kind).label.lower()},
                form=form,
                submit=_("Add"),
            ),
        )

    def configure_view(self, request, pk):
        storage = self._storage_or_404(request, pk)
        form_class = CONFIGURE_FORMS[storage.kind]
        names = CONFIGURATION_FIELDS[storage.kind] + COMMON_CONFIGURATION_FIELDS
        form = form_class(request.POST or None, initial={name: getattr(storage, name) for name in names})
        if request.method == "POST" and form.is_valid():
            try:
                services.storage_modify_configuration(
                    storage=storage, actor=request.user, request=request, **form.cleaned_data
                )
            except ValidationError as error:
                apply_errors(form, error)
                storage.refresh_from_db()
            else:
                self.message_user(
                    request,
                    _("The configuration of “%(name)s” was saved: %(state)s. %(reason)s")
                    % {
                        "name": storage.name,
                        "state": storage.get_state_display(),
                        "reason": storage.state_reason,
                    },
                    messages.SUCCESS if storage.state == ImageStorage.State.CONNECTED else messages.WARNING,
                )
                return redirect(self._change_url(storage))
        return TemplateResponse(
            request,
            "admin/storage/imagestorage/form.html",
            self._context(
                request,
                storage,
                _("Modify configuration of “%(name)s”") % {"name": storage.name},
                form=form,
                submit=_("Save"),
            ),
        )

    def password_view(self, request, pk):
        storage = self._storage_or_404(request, pk)
        if storage.kind == ImageStorage.Kind.SERVER:
            return self._server_password_view(request, storage)
        if storage.kind != ImageStorage.Kind.DISTRIBUTED:
            self.message_user(request, _("Only a distributed storage has a secret key."), messages.ERROR)
            return redirect(self._change_url(storage))
        form = UpdatePasswordForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            services.storage_update_password(
                storage=storage,
                secret_key=form.cleaned_data["secret_key"],
                actor=request.user,
                request=request,
            )
            self.message_user(
                request,
                _("The secret key of “%(name)s” was updated. Reconnect the storage for it to take effect.")
                % {"name": storage.name},
                messages.SUCCESS,
            )
            return redirect(self._change_url(storage))
        return self._password_page(request, storage, form)

    def _password_page(self, request, storage, form):
        return TemplateResponse(
            request,
            "admin/storage/imagestorage/form.html",
            self._context(
                request,
                storage,
                _("Update password of “%(name)s”") % {"name": storage.name},
                form=form,
                submit=_("Update"),
            ),
        )

    def _server_password_view(self, request, storage):
        form = ServerPasswordForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            services.storage_update_server_password(
                storage=storage, password=form.cleaned_data["password"], actor=request.user, request=request
            )
            self.message_user(
                request,
                _(
                    "The password of “%(name)s” was updated. Reconnect the storage: when the server no longer "
                    "accepts the console's key, the password installs it again."
                )
                % {"name": storage.name},
                messages.SUCCESS,
            )
            return redirect(self._change_url(storage))
        return self._password_page(request, storage, form)

    def reconnect_view(self, request, pk):
        storage = self._storage_or_404(request, pk)
        services.storage_reconnect(storage=storage, actor=request.user, request=request)
        if storage.state == ImageStorage.State.CONNECTED:
            self.message_user(
                request, _("“%(name)s” is connected.") % {"name": storage.name}, messages.SUCCESS
            )
        else:
            self.message_user(
                request,
                _("“%(name)s” is disconnected: %(reason)s")
                % {"name": storage.name, "reason": storage.state_reason},
                messages.ERROR,
            )
        return redirect(self._change_url(storage))

    def usage_view(self, request, pk):
        storage = self._storage_or_404(request, pk, change=False)
        usage = selectors.storage_usage(storage=storage, fresh=True)
        return TemplateResponse(
            request,
            "admin/storage/imagestorage/usage.html",
            self._context(
                request,
                storage,
                _("Usage of “%(name)s”") % {"name": storage.name},
                bars=selectors.usage_bars(usage),
                can_change=self.has_change_permission(request, storage),
            ),
        )
