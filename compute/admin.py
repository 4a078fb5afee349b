from django.contrib import admin, messages
from django.db.models import Count
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import ComputeHost, ImageCacheEntry, VirtualMachine
from .services.cache import cache_cleanup, cache_entries_unused
from .services.hosts import host_reconnect


@admin.register(ComputeHost)
class ComputeHostAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "uri",
        "enabled",
        "state",
        "state_reason",
        "domain_type",
        "cpus",
        "memory_column",
        "pool_column",
        "checked_at",
    )
    list_filter = ("enabled", "state", "domain_type")
    search_fields = ("name", "uri")
    actions = ["reconnect_selected", "cleanup_cache_selected"]
    readonly_fields = (
        "state",
        "state_reason",
        "checked_at",
        "domain_type",
        "domain_type_reason",
        "arch",
        "guest_archs",
        "uefi",
        "cpus",
        "memory_bytes",
        "free_memory_bytes",
        "pool_capacity",
        "pool_available",
    )

    @admin.display(description=_("memory (free)"))
    def memory_column(self, obj):
        return f"{filesizeformat(obj.memory_bytes)} ({filesizeformat(obj.free_memory_bytes)})"

    @admin.display(description=_("pool (free)"))
    def pool_column(self, obj):
        return f"{obj.pool_name}: {filesizeformat(obj.pool_capacity)} ({filesizeformat(obj.pool_available)})"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        host = host_reconnect(host=obj, actor=request.user)
        if host.state != ComputeHost.State.CONNECTED:
            self.message_user(request, host.state_reason, messages.WARNING)

    @admin.action(description=_("Reconnect the selected hosts"), permissions=["change"])
    def reconnect_selected(self, request, queryset):
        for host in queryset:
            host = host_reconnect(host=host, actor=request.user)
            if host.state == ComputeHost.State.CONNECTED:
                self.message_user(
                    request,
                    _("%(host)s: connected, %(type)s (%(reason)s).")
                    % {"host": host.name, "type": host.domain_type, "reason": host.domain_type_reason},
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, f"{host.name}: {host.state_reason}", messages.ERROR)

    @admin.action(description=_("Remove cache entries no VM uses"), permissions=["change"])
    def cleanup_cache_selected(self, request, queryset):
        removed = 0
        for host in queryset:
            removed += cache_cleanup(entries=cache_entries_unused(host=host), actor=request.user)
        self.message_user(
            request,
            ngettext("%(count)d cache entry removed.", "%(count)d cache entries removed.", removed)
            % {"count": removed},
        )


@admin.register(ImageCacheEntry)
class ImageCacheEntryAdmin(admin.ModelAdmin):
    list_display = ("image_name", "host", "state", "size_column", "vm_count", "last_used_at", "sha256")
    list_filter = ("host", "state")
    search_fields = ("image_name", "sha256", "volume")
    actions = ["cleanup_selected"]
    readonly_fields = [f.name for f in ImageCacheEntry._meta.fields]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("host").annotate(vm_count=Count("vms"))

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("size"), ordering="size")
    def size_column(self, obj):
        return filesizeformat(obj.size)

    @admin.display(description=_("VMs using it"), ordering="vm_count")
    def vm_count(self, obj):
        return obj.vm_count

    @admin.action(description=_("Clean up: remove the selected entries no VM uses"), permissions=["change"])
    def cleanup_selected(self, request, queryset):
        removed = cache_cleanup(entries=queryset.filter(vm_count=0), actor=request.user)
        kept = queryset.count() - removed
        self.message_user(
            request,
            ngettext("%(count)d cache entry removed.", "%(count)d cache entries removed.", removed)
            % {"count": removed}
            + (" " + _("%(kept)d kept: VMs use them.") % {"kept": kept} if kept else ""),
        )

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(VirtualMachine)
class VirtualMachineAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "image", "host", "state", "vcpus", "memory_mib", "disk_gb", "created_at")
    list_filter = ("state", "host", "tenant")
    search_fields = ("name", "domain_name", "id")
    readonly_fields = [f.name for f in VirtualMachine._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


