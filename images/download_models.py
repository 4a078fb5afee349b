"""Download links, exported images and the administrators' download settings (imported by models.py).

A DownloadLink hands out one file without a login: an image's stored replica, or one of its exports. Its
random token is the credential; only the token's SHA256 is kept. An ExportedImage is one complete file in
a chosen format, written into the image's storage by a `default` job (seeds 002/003 "Export image").
"""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from imageconsole.core.models import BaseModel


class DownloadSettings(BaseModel):
    """One row (pk 1), edited by platform administrators in Django admin."""

    link_validity_hours = models.PositiveIntegerField(
        _("download link validity (hours)"),
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 30)],
        help_text=_("How long a new download link works. The user guides promise 24 hours."),
    )
    export_retention_days = models.PositiveIntegerField(
        _("keep exports (days)"),
        default=7,
        validators=[MaxValueValidator(3650)],
        help_text=_(
            "An exported image is deleted this many days after it was exported; 0 keeps it until "
            "someone deletes it."
        ),
    )

    class Meta:
        verbose_name = _("download settings")
        verbose_name_plural = _("download settings")

    def __str__(self):
        return str(_("Download settings"))

    @classmethod
    def current(cls) -> "DownloadSettings":
        found, _created = cls.objects.get_or_create(pk=1)
        return found


class ExportedImage(BaseModel):
    class Format(models.TextChoices):
        QCOW2 = "qcow2", "qcow2"
        RAW = "raw", "raw"
        VMDK = "vmdk", pgettext_lazy("Export format", "vmdk (streamOptimized)")
        VHD = "vhd", "vhd"
        # Made by the compute app from a VM (an OVF descriptor and a streamOptimized VMDK in a tar); an
        # image itself is never exported in it.
        OVA = "ova", pgettext_lazy("Export format", "OVA template (from a VM)")

    # The formats an image is exported in (the export dialog, the API).
    IMAGE_FORMATS = ("qcow2", "raw", "vmdk", "vhd")

    class Status(models.TextChoices):
        EXPORTING = "exporting", pgettext_lazy("Export status", "Exporting")
        READY = "ready", pgettext_lazy("Export status", "Exported")
        FAILED = "failed", pgettext_lazy("Export status", "Export failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey("images.Image", on_delete=models.CASCADE, related_name="exports")
    # A storage is deleted only when no image is stored there; its data (exports too) stays where it is.
    storage = models.ForeignKey(
        "storage.ImageStorage", on_delete=models.CASCADE, related_name="+", verbose_name=_("image storage")
    )
    format = models.CharField(_("format"), max_length=8, choices=Format.choices)
    key = models.CharField(_("key"), max_length=255, help_text=_("The export's name in the storage."))
    # An export made from something built on the image rather than from the image itself (an OVA of a VM):
    # what it was made from, by name (the file is named after it) and by id (for the app that made it).
    source_name = models.CharField(_("made from"), max_length=128, blank=True)
    source_id = models.UUIDField(_("made from (ID)"), null=True, blank=True, db_index=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.EXPORTING)
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    size = models.PositiveBigIntegerField(_("size"), default=0)
    md5 = models.CharField(_("MD5"), max_length=32, blank=True)
    sha256 = models.CharField(_("SHA256"), max_length=64, blank=True)
    error = models.TextField(_("error"), blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    finished_at = models.DateTimeField(_("exported at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("exported image")
        verbose_name_plural = _("exported images")
        constraints = [
            # Seed 002: an image is exported once (here: once per format) until that export is deleted.
            # OVAs are made from the image's VMs, each its own.
            models.UniqueConstraint(
                fields=["image", "format"],
                condition=~models.Q(format="ova"),
                name="export_one_per_image_format",
            ),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="export_progress_lte_100"),
        ]

    def __str__(self):
        return f"{self.image} ({self.format})"

    @property
    def extension(self) -> str:
        return {"raw": "img"}.get(self.format, self.format)

    @property
    def filename(self) -> str:
        return f"{self.source_name or self.image.name}.{self.extension}"


class DownloadLink(BaseModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey("images.Image", on_delete=models.CASCADE, related_name="download_links")
    export = models.ForeignKey(
        ExportedImage, on_delete=models.CASCADE, null=True, blank=True, related_name="links"
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    filename = models.CharField(_("file name"), max_length=255)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_name = models.CharField(_("created by"), max_length=150, blank=True)
    expires_at = models.DateTimeField(_("expires"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by_name = models.CharField(_("revoked by"), max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("download link")
        verbose_name_plural = _("download links")
        indexes = [models.Index(fields=["image", "expires_at"], name="download_link_image_expiry")]

    def __str__(self):
        return self.filename

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
