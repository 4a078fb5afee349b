import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from imageconsole.core.models import BaseModel


class Tenant(BaseModel):
    name = models.CharField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("An inactive tenant's members cannot work in it.")
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")

    def __str__(self):
        return self.name


class ProjectGroup(BaseModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="project_groups")
    name = models.CharField(_("name"), max_length=64)
    description = models.CharField(_("description"), max_length=255, blank=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("project group")
        verbose_name_plural = _("project groups")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="projectgroup_unique_name_per_tenant")
        ]

    def __str__(self):
        return self.name


class Membership(BaseModel):
    class Role(models.TextChoices):
        OWNER = "owner", pgettext_lazy("Membership role", "Owner")
        SUBACCOUNT = "subaccount", pgettext_lazy("Membership role", "Sub-account")

    class Permission(models.TextChoices):
        VIEW = "view", pgettext_lazy("Sub-account permission", "View")
        MANAGE = "manage", pgettext_lazy("Sub-account permission", "Manage")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.SUBACCOUNT)
    permission = models.CharField(
        _("permission"),
        max_length=16,
        choices=Permission.choices,
        default=Permission.VIEW,
        help_text=_("Sub-accounts with 'manage' may import, edit, delete and download; owners always may."),
    )
    project_groups = models.ManyToManyField(
        ProjectGroup,
        blank=True,
        related_name="memberships",
        verbose_name=_("project groups"),
        help_text=_("Limit a sub-account to these project groups. Leave empty for the whole tenant."),
    )

    class Meta:
        ordering = ["tenant__name", "user__username"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user_per_tenant"),
        ]

    def __str__(self):
        return f"{self.user} @ {self.tenant}"

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER

    @property
    def can_manage(self) -> bool:
        return self.is_owner or self.permission == self.Permission.MANAGE


class Quota(BaseModel):
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="quota")
    max_images = models.PositiveIntegerField(
        _("image count"), null=True, blank=True, help_text=_("Leave empty for no limit.")
    )
    max_bytes = models.PositiveBigIntegerField(
        _("bytes"),
        null=True,
        blank=True,
        help_text=_("Total size of the tenant's images. Leave empty for no limit."),
    )
    max_vms = models.PositiveIntegerField(
        _("VM count"), null=True, blank=True, help_text=_("Leave empty for no limit.")
    )
    max_vcpus = models.PositiveIntegerField(
        _("vCPUs"),
        null=True,
        blank=True,
        help_text=_("Total vCPUs of the tenant's VMs. Leave empty for no limit."),
    )
    max_memory_mib = models.PositiveIntegerField(
        _("VM memory (MiB)"),
        null=True,
        blank=True,
        help_text=_("Total memory of the tenant's VMs. Leave empty for no limit."),
    )

    class Meta:
        verbose_name = _("quota")
        verbose_name_plural = _("quotas")

    def __str__(self):
        return str(self.tenant)


class OperationLog(models.Model):
    class Result(models.TextChoices):
        SUCCESS = "success", pgettext_lazy("Operation result", "Succeeded")
        FAILURE = "failure", pgettext_lazy("Operation result", "Failed")
        STARTED = "started", pgettext_lazy("Operation result", "Started")

    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="operation_logs"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Kept as text so the record survives the deletion of the user and of the resource.
    actor_name = models.CharField(_("actor"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    target_type = models.CharField(_("resource type"), max_length=64, blank=True)
    target_id = models.CharField(_("resource ID"), max_length=64, blank=True, db_index=True)
    target_name = models.CharField(_("resource"), max_length=255, blank=True)
    result = models.CharField(_("result"), max_length=16, choices=Result.choices, default=Result.SUCCESS)
    message = models.TextField(_("message"), blank=True)
    # The message as a code and its parameters, worded when shown (tenants.oplog); `message` then holds
    # the English text for searches and for readers without translations.
    message_code = models.CharField(_("message code"), max_length=255, blank=True)
    message_params = models.JSONField(_("message parameters"), default=dict, blank=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("operation log entry")
        verbose_name_plural = _("operation log")
        indexes = [models.Index(fields=["tenant", "-created_at"], name="oplog_tenant_time")]

    def __str__(self):
        return f"{self.actor_name or '-'} {self.action} {self.target_name}"

    @property
    def action_label(self) -> str:
        from .oplog import action_label

        return action_label(self.action)

    @property
    def display_message(self) -> str:
        """The message in the reader's language."""
        from .oplog import render_message

        return render_message(self.message_code, self.message_params, fallback=self.message)


class UserPreference(BaseModel):
    """What a user chose in the console and expects to find again on any device: e.g. the image list's
    columns. One row per user; `values` maps a preference's key to its value."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_preferences"
    )
    values = models.JSONField(_("values"), default=dict, blank=True)

    class Meta:
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")

    def __str__(self):
        return str(self.user)


class ApiToken(BaseModel):
    """A user's API key. Only the SHA256 of the key is stored; the key itself is shown once."""

    PREFIX_LENGTH = 8

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=64, blank=True)
    prefix = models.CharField(_("prefix"), max_length=PREFIX_LENGTH, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    expires_at = models.DateTimeField(
        _("expires"), null=True, blank=True, help_text=_("After this the token is refused; empty: never.")
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @staticmethod
    def generate_key() -> str:
        """43 URL-safe characters that never start with "-": a command line (glance --os-auth-token KEY,
        curl -H) would read such a key as an option."""
        while True:
            key = secrets.token_urlsafe(32)
            if not key.startswith("-"):
                return key
