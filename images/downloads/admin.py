"""Django admin of downloads: the link validity and export retention (one row), links (revoke) and
exports (delete), through the same services as the console. Imported by images/admin.py."""

from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import DownloadLink, DownloadSettings, ExportedImage
from . import services


@admin.register(DownloadSettings)
class DownloadSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "link_validity_hours", "export_retention_days", "updated_at")

    def has_add_permission(self, request):
        return not DownloadSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        services.download_settings_update(
            link_validity_hours=form.cleaned_data["link_validity_hours"],
            export_retention_days=form.cleaned_data["export_retention_days"],
            actor=request.user,
            request=request,
        )

    def changelist_view(self, request, extra_context=None):
        DownloadSettings.current()  # the one row exists, so the list always has something to edit
        return super().changelist_view(request, extra_context)


@admin.register(DownloadLink)
class DownloadLinkAdmin(admin.ModelAdmin):
    list_display = (
        "filename",
        "tenant",
        "image",
        "export",
        "created_by_name",
        "created_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("tenant", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("filename", "image__name", "image__id", "created_by_name")
    readonly_fields = [f.name for f in DownloadLink._meta.fields if f.name != "token_hash"]
    exclude = ("token_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Revoke the selected links"))
    def revoke(self, request, queryset):
        count = 0
        for link in queryset.filter(revoked_at__isnull=True):
            services.link_revoke(link=link, actor=request.user, request=request)
            count += 1
        self.message_user(
            request,
            ngettext("%(n)d link revoked.", "%(n)d links revoked.", count) % {"n": count},
            messages.SUCCESS,
        )


@admin.register(ExportedImage)
class ExportedImageAdmin(admin.ModelAdmin):
    list_display = (
        "image",
        "tenant",
        "format",
        "status",
        "progress",
        "size_display",
        "storage",
        "finished_at",
        "expires_at",
    )
    list_filter = ("status", "format", "storage", "tenant")
    search_fields = ("image__name", "image__id", "md5", "sha256")
    readonly_fields = [f.name for f in ExportedImage._meta.fields]
    actions = ["delete_exports"]

    @admin.display(description=_("size"), ordering="size")
    def size_display(self, obj):
        return filesizeformat(obj.size) if obj.size else "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description=_("Delete the selected exports (their files and links)"))
    def delete_exports(self, request, queryset):
        count = 0
        for export in queryset:
            services.export_delete(export=export, actor=request.user, request=request)
            count += 1
        self.message_user(
            request,
            ngettext("%(n)d export deleted.", "%(n)d exports deleted.", count) % {"n": count},
            messages.SUCCESS,
        )
