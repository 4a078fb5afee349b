import ipaddress
import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from imageconsole.core.crypto import decrypt, encrypt
from imageconsole.core.models import BaseModel

from .backends.base import StorageError
from .backends.standalone import check_mount_path

GiB = 1024**3
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
TiB = 1024**4


class ImageStorage(BaseModel):
    class Kind(models.TextChoices):
        STANDALONE = "standalone", pgettext_lazy("Image storage kind", "Standalone")
        DISTRIBUTED = "distributed", pgettext_lazy("Image storage kind", "Distributed")
        SERVER = "server", pgettext_lazy("Image storage kind", "Standalone (server)")

    class AdditionMethod(models.TextChoices):
        LOCAL_DIRECTORY = "local_directory", _("Local directory")
        FREE_DISK = "free_disk", _("Free disk")

    class State(models.TextChoices):
        CONNECTED = "connected", pgettext_lazy("Image storage state", "Connected")
        DISCONNECTED = "disconnected", pgettext_lazy("Image storage state", "Disconnected")

    class ChunkNames(models.TextChoices):
        SHA256 = "sha256", "SHA256"
        BLAKE3 = "blake3", "BLAKE3"

    class TargetFormat(models.TextChoices):
        QCOW2 = "qcow2", "qcow2"
        RAW = "raw", "raw"

    name = models.CharField(_("name"), max_length=128, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    data_center = models.CharField(_("data center"), max_length=64, blank=True, default="default")
    # Standalone
    mount_path = models.CharField(
        _("mount path"),
        max_length=512,
        blank=True,
        help_text=_("Absolute path of the directory that holds the image chunks."),
    )
    # Standalone (server): the chunk store on a server of its own, reached over SSH
    host = models.CharField(
        _("image storage IP"), max_length=255, blank=True, help_text=_("Address of the storage server.")
    )
    ssh_port = models.PositiveIntegerField(
        _("SSH port"), default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    ssh_username = models.CharField(_("username"), max_length=64, blank=True, default="root")
    ssh_password_encrypted = models.TextField(blank=True, editable=False)
    ssh_private_key_encrypted = models.TextField(blank=True, editable=False)
    ssh_public_key = models.TextField(_("console SSH key"), blank=True, editable=False)
    ssh_host_key = models.TextField(
        _("server host key"),
        blank=True,
        editable=False,
        help_text=_("The key the server showed when it was added; every connection must show the same."),
    )
    addition_method = models.CharField(
        _("addition method"),
        max_length=16,
        choices=AdditionMethod.choices,
        default=AdditionMethod.LOCAL_DIRECTORY,
    )
    disk = models.CharField(_("disk"), max_length=255, blank=True, editable=False)
    sync_network = models.CharField(
        _("image sync network"),
        max_length=64,
        blank=True,
        help_text=_(
            "CIDR of the network standalone storages use to synchronise images, such as 10.0.1.0/24; when "
            "both storages set it, the target's is used."
        ),
    )
    data_network = models.CharField(
        _("data network"),
        max_length=64,
        blank=True,
        help_text=_("CIDR of the network compute nodes use to read images from this storage."),
    )
    # Distributed (S3-compatible)
    endpoint_url = models.URLField(_("endpoint URL"), blank=True)
    region = models.CharField(_("region"), max_length=64, blank=True)
    bucket = models.CharField(_("bucket"), max_length=63, blank=True)
    access_key = models.CharField(_("access key"), max_length=128, blank=True)
    secret_key_encrypted = models.TextField(blank=True, editable=False)
    capacity_bytes = models.PositiveBigIntegerField(
        _("capacity"),
        default=TiB,
        help_text=_(
            "Distributed storage: the space this storage may use in the bucket (S3 reports no size of its "
            "own). Standalone storage: the size of the file system, measured."
        ),
    )

    reserved_bytes = models.PositiveBigIntegerField(
        _("reserved capacity"),
        default=GiB,
        help_text=_("Capacity kept free on the storage; an import that would use it is refused."),
    )
    upload_concurrency = models.PositiveSmallIntegerField(
        _("blob upload concurrency"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(16)],
    )
    download_concurrency = models.PositiveSmallIntegerField(
        _("blob download concurrency"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(16)],
    )
    target_format = models.CharField(
        _("target format"),
        max_length=8,
        choices=TargetFormat.choices,
        blank=True,
        help_text=_(
            "Format converted images are stored in; empty means qcow2 for standalone, raw for distributed."
        ),
    )
    chunk_names = models.CharField(
        _("chunk names"),
        max_length=8,
        choices=ChunkNames.choices,
        default=ChunkNames.BLAKE3,
        editable=False,
        help_text=_(
            "The hash that names the chunks new images are cut into (standalone storage). A storage made "
            "before BLAKE3 keeps SHA256 until it is converted with manage.py convertchunks."
        ),
    )
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.CONNECTED)
    state_reason = models.CharField(_("reason"), max_length=500, blank=True)
    enabled = models.BooleanField(
        _("enabled"),
        default=True,
        help_text=_("Tenants may choose only enabled, connected storages for imports."),
    )
    last_cleanup_at = models.DateTimeField(_("last data cleanup"), null=True, blank=True, editable=False)
    last_cleanup_bytes = models.PositiveBigIntegerField(
        _("bytes freed by the last cleanup"), default=0, editable=False
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("image storage")
        verbose_name_plural = _("image storages")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(upload_concurrency__gte=1, upload_concurrency__lte=16)
                & models.Q(download_concurrency__gte=1, download_concurrency__lte=16),
                name="imagestorage_concurrency_1_to_16",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.kind == self.Kind.STANDALONE:
            try:
                self.mount_path = str(check_mount_path(self.mount_path))
            except StorageError as error:
                errors["mount_path"] = ValidationError(str(error), code="mount_path")
        elif self.kind == self.Kind.SERVER:
            if not self.host:
                errors["host"] = ValidationError(
                    _("Enter the address of the storage server."), code="required"
                )
            if not self.ssh_username:
                errors["ssh_username"] = ValidationError(_("Enter the user name."), code="required")
            try:
                self.mount_path = str(check_mount_path(self.mount_path, local=False))
            except StorageError as error:
                errors["mount_path"] = ValidationError(str(error), code="mount_path")
            for field in ("sync_network", "data_network"):
                value = getattr(self, field)
                if value:
                    try:
                        setattr(self, field, str(ipaddress.ip_network(value, strict=False)))
                    except ValueError:
                        errors[field] = ValidationError(
                            _("Enter a network in CIDR notation, such as 10.0.1.0/24."), code="cidr"
                        )
        elif self.kind == self.Kind.DISTRIBUTED:
            required = {
                "endpoint_url": _(
                    "Enter the URL of the S3-compatible endpoint, such as https://s3.example.com."
                ),
                "bucket": _("Enter a bucket name; the bucket is created when it does not exist."),
                "access_key": _("Enter the access key."),
            }
            for field, message in required.items():
                if not getattr(self, field):
                    errors[field] = ValidationError(message, code="required")
            if self.bucket and not BUCKET_NAME.fullmatch(self.bucket):
                errors["bucket"] = ValidationError(
                    _(
                        "A bucket name has 3 to 63 lower-case letters, digits, dots and hyphens, and starts and "
                        "ends with a letter or digit."
                    ),
                    code="bucket",
                )
        if errors:
            raise ValidationError(errors)

    def get_secret_key(self) -> str:
        return decrypt(self.secret_key_encrypted)

    def set_secret_key(self, value: str) -> None:
        self.secret_key_encrypted = encrypt(value)

    def get_ssh_password(self) -> str:
        return decrypt(self.ssh_password_encrypted) if self.ssh_password_encrypted else ""

    def set_ssh_password(self, value: str) -> None:
        self.ssh_password_encrypted = encrypt(value) if value else ""

    def get_ssh_private_key(self) -> str:
        return decrypt(self.ssh_private_key_encrypted) if self.ssh_private_key_encrypted else ""

    def set_ssh_private_key(self, value: str) -> None:
        self.ssh_private_key_encrypted = encrypt(value)

    @property
    def is_standalone(self) -> bool:
        """A directory the console's own processes read and write (local disk or a shared mount)."""
        return self.kind == self.Kind.STANDALONE

    @property
    def is_server(self) -> bool:
        """A standalone storage on a server of its own, reached over SSH."""
        return self.kind == self.Kind.SERVER

    @property
    def uses_chunks(self) -> bool:
        """Kept as content-addressed chunks (standalone, either way) rather than objects (S3)."""
        return self.kind in (self.Kind.STANDALONE, self.Kind.SERVER)

    @property
    def effective_target_format(self) -> str:
        if self.target_format:
            return self.target_format
        return self.TargetFormat.QCOW2 if self.uses_chunks else self.TargetFormat.RAW
