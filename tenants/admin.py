from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from . import services
from .models import ApiToken, Membership, OperationLog, ProjectGroup, Quota, Tenant, UserPreference


class QuotaInline(admin.StackedInline):
    model = Quota
    can_delete = False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    filter_horizontal = ["project_groups"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "is_active", "member_count", "created_at"]
    list_filter = ["is_active", "created_at"]
    search_fields = ["name", "description"]
    inlines = [QuotaInline, MembershipInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_members=Count("memberships", distinct=True))

    @admin.display(description=_("members"), ordering="_members")
    def member_count(self, obj):
        return obj._members

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        action = "tenant.update" if change else "tenant.create"
        services.log(action=action, tenant=obj, target=obj, request=request)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        Quota.objects.get_or_create(tenant=form.instance)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "permission", "scope", "created_at"]
    list_filter = ["role", "permission", "tenant"]
    search_fields = ["user__username", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]
    filter_horizontal = ["project_groups"]
    list_select_related = ["user", "tenant"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("project_groups")

    @admin.display(description=_("project groups"))
    def scope(self, obj):
        return ", ".join(group.name for group in obj.project_groups.all()) or _("All")


@admin.register(ProjectGroup)
class ProjectGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "description", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "tenant__name"]
    list_select_related = ["tenant"]


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["tenant", "max_images", "max_bytes", "usage"]
    search_fields = ["tenant__name"]
    list_select_related = ["tenant"]

    @admin.display(description=_("usage"))
    def usage(self, obj):
        usage = services.tenant_usage(tenant=obj.tenant)
        from django.template.defaultfilters import filesizeformat

        return f"{usage.images} / {filesizeformat(usage.bytes)}"


@admin.register(OperationLog)
class OperationLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant",
        "actor_name",
        "action",
        "target_type",
        "target_name",
        "result",
        "client_ip",
    ]
    list_filter = ["result", "action", "target_type", "tenant"]
    search_fields = ["actor_name", "action", "target_name", "target_id", "message"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "expires_at", "last_used_at"]
    search_fields = ["user__username", "prefix", "name"]
    readonly_fields = ["prefix", "last_used_at"]
    exclude = ["key_hash"]

    def has_add_permission(self, request):
        return False


class UserMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["tenant"]
    filter_horizontal = ["project_groups"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class ConsoleUserAdmin(UserAdmin):
    """Django's user admin, with the user's tenants on the same page and a tenant filter."""

    inlines = [UserMembershipInline]
    list_display = ["username", "email", "is_staff", "is_active", "tenant_names", "last_login"]
    list_filter = [*UserAdmin.list_filter, "memberships__tenant", "memberships__role"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("memberships__tenant")

    @admin.display(description=_("tenants"))
    def tenant_names(self, obj):
        return ", ".join(m.tenant.name for m in obj.memberships.all())


@admin.register(UserPreference)
class UserPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "updated_at"]
    search_fields = ["user__username"]
    readonly_fields = ["created_at", "updated_at"]
