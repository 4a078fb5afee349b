"""The deletion policy (seed 003 "Delete an Image"): platform-wide, with a per-tenant override, and the
recycle bin's view of images for Django admin."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from imageconsole.core.models import BaseModel
from images.models import Image

DEFAULT_RETENTION_DAYS = Decimal(3)


class Mode(models.TextChoices):
    IMMEDIATE = "immediate", pgettext_lazy("Deletion policy", "Immediate deletion")
    DELAYED = "delayed", pgettext_lazy("Deletion policy", "Delayed deletion")
    NEVER = "never", pgettext_lazy("Deletion policy", "Never delete")


POLICY_RULE = _(
    "Immediate: a deleted image is destroyed at once. Delayed: it waits in the recycle bin for the "
    "retention period, then it is destroyed. Never: it waits in the recycle bin until someone destroys it. "
    "Saving a change applies it to the images already in the bin: under delayed deletion each is "
    "destroyed its retention period after it was deleted (a shorter retention brings the time forward, "
    "and images already past it are destroyed within a minute); under never, their expunge times are "
    "cleared; immediate deletion changes only later deletions."
)


class PolicyFields(models.Model):
    mode = models.CharField(
        _("image deletion policy"), max_length=10, choices=Mode.choices, default=Mode.DELAYED
    )
    retention_days = models.DecimalField(
        _("retention (days)"),
        max_digits=9,
        decimal_places=5,
        default=DEFAULT_RETENTION_DAYS,
        validators=[MinValueValidator(Decimal("0.00001")), MaxValueValidator(Decimal(36500))],
        help_text=_(
            "Under delayed deletion: how long a deleted image stays in the recycle bin. Fractions "
            "are allowed, e.g. 0.5 for 12 hours."
        ),
    )

    class Meta:
        abstract = True

    def clean(self):
        if self.mode == Mode.DELAYED and not self.retention_days:
            raise ValidationError({"retention_days": _("Give the retention period of delayed deletion.")})


class DeletionPolicy(PolicyFields, BaseModel):
    """The platform's policy: one row (pk 1), edited in Django admin by platform administrators."""

    class Meta:
        verbose_name = _("deletion policy")
        verbose_name_plural = _("deletion policy")

    def __str__(self):
        return str(_("Image deletion policy"))

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)


class TenantDeletionPolicy(PolicyFields, BaseModel):
    """A tenant's own policy, in place of the platform's."""

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="deletion_policy", verbose_name=_("tenant")
    )

    class Meta:
        verbose_name = _("tenant deletion policy")
        verbose_name_plural = _("tenant deletion policies")

    def __str__(self):
        return str(self.tenant)


class BinnedImage(Image):
    """Images in the recycle bin (every tenant's), for Django admin's restore and expunge actions."""

    class Meta:
        proxy = True
        verbose_name = _("image in the recycle bin")
        verbose_name_plural = _("images in the recycle bin")
