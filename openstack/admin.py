from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import IdentityToken


@admin.register(IdentityToken)
class IdentityTokenAdmin(admin.ModelAdmin):
    list_display = ("audit_id", "user", "tenant", "created_at", "expires_at", "revoked_at")
    list_filter = ("tenant",)
    search_fields = ("user__username", "tenant__name", "audit_id")
    readonly_fields = ("user", "tenant", "audit_id", "key_hash", "expires_at", "created_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Revoke the selected tokens"), permissions=["change"])
    def revoke(self, request, queryset):
        from .services import identity_tokens_revoke

        identity_tokens_revoke(queryset=queryset)
