"""Django admin for platform administrators: images (every tenant's), replicas, upload sessions, the sftp
host keys trusted on first use and the OpenPGP keys trusted to sign checksum files.

Status changes go through the services (cancel an import, reconcile); rows are never deleted here:
deleting an image is the console's (recycle bin), which keeps its bytes and log consistent.
"""

from django import forms
from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import admin_storage  # noqa: F401  (registers the image storages' admin)
from .models import (
    CHECKSUM_FIELDS,
    SYSTEM_FIELDS,
    Image,
    ImageReplica,
    ImageShare,
    SftpHostKey,
    TrustedSigningKey,
    UploadSession,
)
from .services import import_cancel
from .services.reconcile import reconcile
from .services.transitions import TransitionNotAllowed


class ReplicaInline(admin.TabularInline):
    model = ImageReplica
    extra = 0
    can_delete = False
    fields = ("storage", "state", "size", "progress", "key", "error", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ShareInline(admin.TabularInline):
    model = ImageShare
    extra = 0
    fields = ("tenant", "status", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")
    autocomplete_fields = ("tenant",)
    verbose_name = _("shared with")
    verbose_name_plural = _("shared with")


class UploadSessionInline(admin.StackedInline):
    model = UploadSession
    extra = 0
    can_delete = False
    fields = (
        "length",
        "offset",
        "filename",
        "source_url",
        "staging_path",
        "received_sha256",
        "inspection",
        "resumes",
        "bytes_reread",
        "attempts",
        "cancel_requested",
        "expires_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "tenant",
        "status",
        "stage",
        "progress",
        "kind",
        "disk_format",
        "source_format",
        "size_column",
        "storage",
        "encrypted",
        "created_at",
    )
    list_filter = (
        "status",
        "stage",
        "kind",
        "disk_format",
        "source_format",
        "source",
        "encrypted",
        "storage",
        "tenant",
    )
    search_fields = ("name", "=id", "=sha256", "=md5", "tenant__name")
    list_select_related = ("tenant", "storage")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    inlines = (UploadSessionInline, ReplicaInline, ShareInline)
    actions = ("cancel_imports", "reconcile_now")
    readonly_fields = (
        "id",
        "tenant",
        "owner",
        "status",
        "stage",
        "progress",
        "bytes_done",
        "bytes_total",
        "error",
        "source",
        "source_format",
        "disk_format",
        "size",
        "virtual_size",
        "md5",
        "sha256",
        "expected_sha256",
        *CHECKSUM_FIELDS,
        "encrypted",
        "storage",
        "job_id",
        "deleted_at",
        "deleted_by",
        "purge_after",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "tenant",
                    "owner",
                    "name",
                    "description",
                    "project_group",
                    "labels",
                    "enabled",
                )
            },
        ),
        (
            _("Import"),
            {
                "fields": (
                    "status",
                    "stage",
                    "progress",
                    "bytes_done",
                    "bytes_total",
                    "error",
                    "source",
                    "source_format",
                    "job_id",
                    "expected_sha256",
                    "checksum_algorithm",
                    "checksum_expected",
                    "checksum_of",
                    "checksum_source",
                    "checksum_file_url",
                    "checksum_signature_url",
                    "checksum_signer",
                    "checksum_verified_at",
                )
            },
        ),
        (
            _("Bytes"),
            {
                "fields": (
                    "disk_format",
                    "size",
                    "virtual_size",
                    "md5",
                    "sha256",
                    "encrypted",
                    "storage",
                    "target_size",
                )
            },
        ),
        (
            _("System"),
            {"fields": ("kind", *SYSTEM_FIELDS)},
        ),
        (_("Sharing"), {"fields": ("sharing",)}),
        (_("Recycle bin"), {"fields": ("deleted_at", "deleted_by", "purge_after")}),
        (_("Times"), {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description=_("size"), ordering="size")
    def size_column(self, obj):
        return filesizeformat(obj.size) if obj.size else "—"

    def has_add_permission(self, request):
        return False  # images are imported (console, API, importimage), not typed in

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Cancel the selected imports"), permissions=["change"])
    def cancel_imports(self, request, queryset):
        cancelled, skipped = 0, []
        for image in queryset:
            try:
                import_cancel(image=image, actor=request.user, request=request)
                cancelled += 1
            except TransitionNotAllowed:
                skipped.append(image.name)
        if cancelled:
            self.message_user(
                request,
                ngettext("%(count)d import cancelled.", "%(count)d imports cancelled.", cancelled)
                % {"count": cancelled},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                _("Not importing, so not cancelled: %(names)s") % {"names": ", ".join(skipped)},
                messages.WARNING,
            )

    @admin.action(
        description=_("Reconcile imports now (fail or resume those whose job is gone)"),
        permissions=["change"],
    )
    def reconcile_now(self, request, queryset):
        self.message_user(request, str(reconcile()), messages.INFO)


@admin.register(ImageReplica)
class ImageReplicaAdmin(admin.ModelAdmin):
    list_display = ("image", "storage", "state", "size", "progress", "key", "updated_at")
    list_filter = ("state", "storage")
    search_fields = ("image__name", "=image__id", "key")
    list_select_related = ("image", "storage")
    readonly_fields = (
        "image",
        "storage",
        "key",
        "state",
        "size",
        "progress",
        "error",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UploadSession)
class UploadSessionAdmin(admin.ModelAdmin):
    list_display = (
        "image",
        "length",
        "offset",
        "filename",
        "source_url",
        "resumes",
        "expires_at",
        "cancel_requested",
    )
    list_filter = ("cancel_requested",)
    search_fields = ("image__name", "=image__id", "filename")
    list_select_related = ("image",)
    # A URL's password stays encrypted and is never shown; the receive state is binary (hash midstates).
    exclude = ("secret_encrypted", "receive_state")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SftpHostKey)
class SftpHostKeyAdmin(admin.ModelAdmin):
    """Keys are recorded by the first import from a server; delete one when the server's key really
    changed, and the next import trusts the new key."""

    list_display = ("host", "port", "key_type", "fingerprint", "created_at", "last_used_at")
    search_fields = ("host", "fingerprint")
    readonly_fields = ("host", "port", "key_type", "key", "fingerprint", "created_at", "last_used_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


from .downloads import admin as _downloads_admin  # noqa: E402, F401 - registers the download models


class TrustedSigningKeyForm(forms.ModelForm):
    class Meta:
        model = TrustedSigningKey
        fields = ("name", "armored_key", "enabled")

    def clean_armored_key(self):
        from .checksums import ChecksumError
        from .signatures import key_fingerprints

        armored = self.cleaned_data["armored_key"].strip()
        try:
            fingerprints = key_fingerprints(armored)
        except ChecksumError as error:
            raise forms.ValidationError(error.message) from error
        if len(fingerprints) != 1:
            raise forms.ValidationError(
                _("Paste exactly one OpenPGP public key (ASCII-armoured); this holds %(count)d.")
                % {"count": len(fingerprints)}
            )
        self.instance.fingerprint = fingerprints[0]
        return armored + "\n"


@admin.register(TrustedSigningKey)
class TrustedSigningKeyAdmin(admin.ModelAdmin):
    """Keys whose detached signatures of checksum files (SHA256SUMS.gpg) imports accept."""

    form = TrustedSigningKeyForm
    list_display = ("name", "fingerprint", "enabled", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "fingerprint")
    readonly_fields = ("fingerprint", "created_at", "updated_at")
