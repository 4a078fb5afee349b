"""Django admin for platform administrators: the deletion policy (platform-wide and per tenant) and the
images of every tenant in the recycle bin, with restore and expunge actions calling the services."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from images.models import Image
from images.services.transitions import TransitionNotAllowed

from .models import POLICY_RULE, BinnedImage, DeletionPolicy, TenantDeletionPolicy
from .services import RestoreRefused, image_expunge, image_restore, platform_policy, policy_apply


class _PolicyAdmin(admin.ModelAdmin):
    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.base_fields["mode"].help_text = POLICY_RULE
        return form

    def _applied(self, request, changed: int) -> None:
        messages.info(
            request,
            ngettext(
                "%(count)d image in the recycle bin got a new expunge time.",
                "%(count)d images in the recycle bin got a new expunge time.",
                changed,
            )
            % {"count": changed},
        )


@admin.register(DeletionPolicy)
class DeletionPolicyAdmin(_PolicyAdmin):
    """One row: the list opens the policy itself."""

    fields = ("mode", "retention_days", "updated_at")
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        policy = platform_policy(create=True)
        return HttpResponseRedirect(reverse("admin:recyclebin_deletionpolicy_change", args=[policy.pk]))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._applied(request, policy_apply(tenant=None, actor=request.user, request=request))


@admin.register(TenantDeletionPolicy)
class TenantDeletionPolicyAdmin(_PolicyAdmin):
    list_display = ("tenant", "mode", "retention_days", "updated_at")
    list_filter = ("mode",)
    search_fields = ("tenant__name",)
    autocomplete_fields = ("tenant",)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._applied(request, policy_apply(tenant=obj.tenant, actor=request.user, request=request))

    def delete_model(self, request, obj):
        tenant = obj.tenant
        super().delete_model(request, obj)
        self._applied(request, policy_apply(tenant=tenant, actor=request.user, request=request))

    def delete_queryset(self, request, queryset):
        tenants = [row.tenant for row in queryset.select_related("tenant")]
        super().delete_queryset(request, queryset)
        for tenant in tenants:
            policy_apply(tenant=tenant, actor=request.user, request=request)


@admin.register(BinnedImage)
class BinnedImageAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "tenant",
        "status",
        "size_column",
        "deleted_at",
        "deleted_by",
        "purge_after",
        "error",
    )
    list_filter = ("status", "tenant", "kind", "disk_format")
    search_fields = ("name", "=id", "tenant__name")
    ordering = ("-deleted_at", "-pk")
    actions = ("restore", "expunge")
    readonly_fields = [f.name for f in Image._meta.fields]
    exclude = ("shared_with",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(status__in=[Image.Status.DELETED, Image.Status.DELETING])
            .select_related("tenant", "deleted_by")
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("size"), ordering="size")
    def size_column(self, obj):
        return filesizeformat(obj.size)

    @admin.action(description=_("Restore the selected images"), permissions=["change"])
    def restore(self, request, queryset):
        done = 0
        for image in queryset:
            try:
                image_restore(image=image, actor=request.user, request=request)
            except (RestoreRefused, TransitionNotAllowed) as exc:
                messages.warning(request, " ".join(getattr(exc, "messages", [str(exc)])))
            else:
                done += 1
        if done:
            messages.success(
                request,
                ngettext("%(count)d image restored.", "%(count)d images restored.", done) % {"count": done},
            )

    @admin.action(
        description=_("Expunge the selected images (destroy them with their data)"), permissions=["change"]
    )
    def expunge(self, request, queryset):
        # Destructive: a confirmation page first, as Django's own "delete selected" asks.
        if request.POST.get("post") != "yes":
            return TemplateResponse(
                request,
                "admin/recyclebin/binnedimage/expunge_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("Expunge the selected images"),
                    "opts": self.model._meta,
                    "queryset": queryset.select_related("tenant"),
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "media": self.media,
                },
            )
        done = 0
        for image in queryset:
            try:
                image_expunge(image=image, actor=request.user, request=request)
            except TransitionNotAllowed as exc:
                messages.warning(request, str(exc))
            else:
                done += 1
        if done:
            messages.success(
                request,
                ngettext("%(count)d image is being destroyed.", "%(count)d images are being destroyed.", done)
                % {"count": done},
            )
