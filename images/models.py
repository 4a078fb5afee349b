import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from imageconsole.core.models import BaseModel
from imageconsole.core.words import render_words

# What an image says about the system inside it: shown together, copied together (an image made from a VM
# takes them from the VM's image).
SYSTEM_FIELDS = (
    "os_type",
    "platform",
    "os_version",
    "architecture",
    "boot_mode",
    "csm",
    "virtio",
    "cloud_init",
    "qemu_ga",
    "hot_upgrade",
)

# An expected checksum, where it came from and when it was verified (images.checksums).
CHECKSUM_FIELDS = (
    "checksum_algorithm",
    "checksum_expected",
    "checksum_of",
    "checksum_source",
    "checksum_file_url",
    "checksum_signature_url",
    "checksum_signer",
    "checksum_verified_at",
)


class ImageQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        """Images a tenant owns. Selectors add sharing and project-group scope on top of this."""
        return self.filter(tenant=tenant)


class Image(BaseModel):
    class Status(models.TextChoices):
        CREATING = "creating", pgettext_lazy("Image status", "Creating")
        UPLOADING = "uploading", pgettext_lazy("Image status", "Importing")
        AVAILABLE = "available", pgettext_lazy("Image status", "Available")
        FAILED = "failed", pgettext_lazy("Image status", "Import failed")
        DELETING = "deleting", pgettext_lazy("Image status", "Deleting")
        DELETED = "deleted", pgettext_lazy("Image status", "Deleted")

    # Statuses whose rows poll themselves in the list.
    TRANSITIONAL = frozenset({Status.CREATING, Status.UPLOADING, Status.DELETING})

    # Allowed transitions; `images.services.image_transition` is the only writer of `status`.
    # `deleted` is the recycle bin; `deleting` is an expunge at work (from the bin, or a delete under
    # the "immediate" policy) and ends with the row removed, so nothing leaves it.
    TRANSITIONS = {
        Status.CREATING: {Status.AVAILABLE, Status.FAILED},
        Status.UPLOADING: {Status.AVAILABLE, Status.FAILED},
        Status.AVAILABLE: {Status.DELETED, Status.DELETING},
        Status.FAILED: {Status.DELETED, Status.DELETING},
        Status.DELETING: set(),
        Status.DELETED: {Status.AVAILABLE, Status.FAILED, Status.DELETING},
    }

    class FailureReason(models.TextChoices):
        """Why a `failed` image failed: its import ran into an error, or someone cancelled it."""

        NONE = "", pgettext_lazy("Failure reason", "—")
        ERROR = "error", pgettext_lazy("Failure reason", "Error")
        CANCELLED = "cancelled", pgettext_lazy("Failure reason", "Cancelled")

    class Stage(models.TextChoices):
        NONE = "", pgettext_lazy("Image stage", "—")
        QUEUED = "queued", pgettext_lazy("Image stage", "Queued")
        RECEIVING = "receiving", pgettext_lazy("Image stage", "Receiving")
        DOWNLOADING = "downloading", pgettext_lazy("Image stage", "Downloading")
        INSPECTING = "inspecting", pgettext_lazy("Image stage", "Inspecting")
        CONVERTING = "converting", pgettext_lazy("Image stage", "Converting")
        STORING = "storing", pgettext_lazy("Image stage", "Storing")

    class Kind(models.TextChoices):
        SYSTEM = "system", pgettext_lazy("Image kind", "System image")
        VOLUME = "volume", pgettext_lazy("Image kind", "Volume image")
        ISO = "iso", pgettext_lazy("Image kind", "ISO image")

    class DiskFormat(models.TextChoices):
        QCOW2 = "qcow2", "qcow2"
        RAW = "raw", "raw"
        VMDK = "vmdk", "vmdk"
        VHD = "vhd", "vhd"
        VHDX = "vhdx", "vhdx"
        OVA = "ova", "ova"
        ISO = "iso", "iso"

    class OSType(models.TextChoices):
        LINUX = "linux", "Linux"
        WINDOWS = "windows", "Windows"
        OTHER = "other", pgettext_lazy("OS type", "Other")

    class Architecture(models.TextChoices):
        X86_64 = "x86_64", "x86_64"
        AARCH64 = "aarch64", "aarch64"
        MIPS64EL = "mips64el", "mips64el"

    class BootMode(models.TextChoices):
        BIOS = "bios", pgettext_lazy("Boot mode", "BIOS (Legacy)")
        UEFI = "uefi", "UEFI"

    class Source(models.TextChoices):
        UPLOAD = "upload", pgettext_lazy("Image source", "Local file")
        URL = "url", pgettext_lazy("Image source", "URL")
        VM = "vm", pgettext_lazy("Image source", "Virtual machine")
        STORAGE_SCAN = "scan", pgettext_lazy("Image source", "Storage scan")

    class ChecksumAlgorithm(models.TextChoices):
        MD5 = "md5", "MD5"
        SHA1 = "sha1", "SHA-1"
        SHA256 = "sha256", "SHA-256"
        SHA512 = "sha512", "SHA-512"

    class ChecksumOf(models.TextChoices):
        SENT = "sent", _("the file as sent")
        IMAGE = "image", _("the decompressed image")

    class ChecksumSource(models.TextChoices):
        TYPED = "typed", _("typed in")
        FILE = "file", _("checksum file")
        SIGNED = "signed", _("signed checksum file")

    class Sharing(models.TextChoices):
        PRIVATE = "private", pgettext_lazy("Sharing mode", "Not shared")
        TENANTS = "tenants", pgettext_lazy("Sharing mode", "Shared with chosen tenants")
        GLOBAL = "global", pgettext_lazy("Sharing mode", "Shared globally")

    id = models.UUIDField(_("resource ID"), primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="images")
    project_group = models.ForeignKey(
        "tenants.ProjectGroup",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="images",
        verbose_name=_("project group"),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    storage = models.ForeignKey(
        "storage.ImageStorage",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="images",
        verbose_name=_("image storage"),
        help_text=_("The storage the import writes to; replicas record where the bytes are."),
    )
    name = models.CharField(_("name"), max_length=128, db_index=True)
    description = models.CharField(_("remarks"), max_length=1024, blank=True)
    kind = models.CharField(_("image type"), max_length=8, choices=Kind.choices, default=Kind.SYSTEM)
    disk_format = models.CharField(
        _("format"),
        max_length=8,
        choices=DiskFormat.choices,
        help_text=_("The format stored: after a conversion, the storage's target format."),
    )
    source_format = models.CharField(
        _("format imported"), max_length=8, choices=DiskFormat.choices, blank=True
    )
    os_type = models.CharField(_("OS type"), max_length=8, choices=OSType.choices, default=OSType.LINUX)
    platform = models.CharField(_("platform"), max_length=32, blank=True)
    os_version = models.CharField(_("OS version"), max_length=32, blank=True)
    architecture = models.CharField(
        _("architecture"), max_length=10, choices=Architecture.choices, default=Architecture.X86_64
    )
    boot_mode = models.CharField(
        _("boot mode"), max_length=8, choices=BootMode.choices, default=BootMode.BIOS
    )
    csm = models.BooleanField(_("CSM"), default=False)
    virtio = models.BooleanField(_("VirtIO"), default=True)
    cloud_init = models.BooleanField(_("cloud-init"), default=False)
    qemu_ga = models.BooleanField(_("qemu-ga"), default=False)
    hot_upgrade = models.BooleanField(_("hot upgrade"), default=False)
    encrypted = models.BooleanField(_("encrypted"), default=False)
    labels = models.JSONField(_("labels"), default=list, blank=True)
    target_size = models.PositiveBigIntegerField(
        _("target image size"), null=True, blank=True, help_text=_("In bytes: 20 GB to 500 GB.")
    )
    size = models.PositiveBigIntegerField(_("size"), default=0)
    compression = models.CharField(
        _("compression"),
        max_length=8,
        choices=[("gzip", "gzip"), ("xz", "xz"), ("zstd", "zstd"), ("bzip2", "bzip2")],
        blank=True,
        help_text=_(
            "How the imported file was compressed (recognised by its first bytes); empty if it was not."
        ),
    )
    compressed_size = models.PositiveBigIntegerField(
        _("compressed size"),
        null=True,
        blank=True,
        help_text=_(
            "The size of the compressed file as it arrived; the size is that of the decompressed image."
        ),
    )
    virtual_size = models.PositiveBigIntegerField(_("virtual size"), null=True, blank=True)
    md5 = models.CharField(_("MD5"), max_length=32, blank=True)
    sha256 = models.CharField(_("SHA256"), max_length=64, blank=True)
    expected_sha256 = models.CharField(_("expected SHA256"), max_length=64, blank=True)
    # A checksum the import is verified against (images.checksums): typed, or the entry for the file's
    # name in a checksum file (SHA256SUMS), maybe signed. `checksum_of` says which bytes it covers.
    checksum_algorithm = models.CharField(
        _("checksum algorithm"), max_length=8, choices=ChecksumAlgorithm.choices, blank=True
    )
    checksum_expected = models.CharField(
        _("expected checksum"), max_length=128, blank=True, help_text=_("Lowercase hexadecimal.")
    )
    checksum_of = models.CharField(
        _("checksum covers"),
        max_length=8,
        choices=ChecksumOf.choices,
        default=ChecksumOf.SENT,
        blank=True,
        help_text=_(
            "sent: the file as uploaded or downloaded (compressed, if it was); image: the image after "
            "decompression. The same bytes for a file that is not compressed."
        ),
    )
    checksum_source = models.CharField(
        _("checksum from"), max_length=8, choices=ChecksumSource.choices, blank=True
    )
    checksum_file_url = models.CharField(_("checksum file URL"), max_length=2048, blank=True)
    checksum_signature_url = models.CharField(_("checksum signature URL"), max_length=2048, blank=True)
    checksum_signer = models.CharField(
        _("checksum signed by"),
        max_length=300,
        blank=True,
        help_text=_("The trusted key's name and fingerprint."),
    )
    checksum_verified_at = models.DateTimeField(
        _("checksum verified"),
        null=True,
        blank=True,
        help_text=_("When the bytes matched the expected checksum; empty until then."),
    )
    source = models.CharField(_("source"), max_length=8, choices=Source.choices, default=Source.UPLOAD)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.UPLOADING, db_index=True
    )
    stage = models.CharField(
        _("stage"), max_length=12, choices=Stage.choices, default=Stage.QUEUED, blank=True
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0, help_text=_("Percent, 0 to 100."))
    bytes_done = models.PositiveBigIntegerField(_("bytes done"), default=0)
    bytes_total = models.PositiveBigIntegerField(_("bytes total"), null=True, blank=True)
    bytes_per_second = models.PositiveBigIntegerField(
        _("transfer rate"), null=True, blank=True, help_text=_("Bytes per second since the stage began.")
    )
    error = models.TextField(_("error"), blank=True)
    # The error's msgid and values (imageconsole.core.words), to word it in the reader's language.
    error_words = models.JSONField(_("error words"), null=True, blank=True, editable=False)
    failure_reason = models.CharField(
        _("failure reason"),
        max_length=12,
        choices=FailureReason.choices,
        default=FailureReason.NONE,
        blank=True,
        help_text=_("For a failed image: an error, or a cancelled import (shown as “Cancelled”)."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    protected = models.BooleanField(
        _("protected"), default=False, help_text=_("A protected image cannot be deleted until unprotected.")
    )
    min_disk = models.PositiveIntegerField(
        _("minimum disk (GB)"), default=0, help_text=_("The smallest disk a VM made from it needs.")
    )
    min_ram = models.PositiveIntegerField(
        _("minimum memory (MB)"), default=0, help_text=_("The least memory a VM made from it needs.")
    )
    properties = models.JSONField(
        _("properties"),
        default=dict,
        blank=True,
        help_text=_("Free-form key/value properties (OpenStack image properties)."),
    )
    sharing = models.CharField(
        _("sharing mode"), max_length=8, choices=Sharing.choices, default=Sharing.PRIVATE
    )
    shared_with = models.ManyToManyField(
        "tenants.Tenant",
        blank=True,
        through="ImageShare",
        related_name="images_shared_with_me",
        verbose_name=_("shared with"),
    )
    job_id = models.CharField(max_length=64, blank=True)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    purge_after = models.DateTimeField(_("expunge after"), null=True, blank=True)
    restore_status = models.CharField(  # noqa: DJ001
        _("status before deletion"),
        max_length=12,
        choices=[(Status.AVAILABLE, Status.AVAILABLE.label), (Status.FAILED, Status.FAILED.label)],
        null=True,  # nullable so that adding it is an ALTER TABLE that keeps the count triggers (SQLite)
        blank=True,
        help_text=_("The status a restore from the recycle bin gives the image back."),
    )

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("image")
        verbose_name_plural = _("images")
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="image_tenant_status_created"),
            models.Index(fields=["tenant", "kind", "-created_at"], name="image_tenant_kind_created"),
            # The list (images.selectors.ImageListing): counts and deep pages of a tenant's images in the
            # default order read this index alone; the trailing columns are the common filters.
            # The list (images.selectors.ImageListing): deep pages of a tenant's live images in the default
            # order are found in this index alone (PostgreSQL: an index-only scan, the kind included).
            models.Index(
                fields=["tenant", "created_at", "id"],
                include=["kind"],
                condition=~models.Q(status="deleted"),
                name="image_live_order",
            ),
            # Finds the few images shared with other tenants without reading the table.
            models.Index(fields=["sharing", "status", "tenant", "id"], name="image_shared"),
            # Counts a tenant's images for the list, with the common filters and the name search, from a
            # narrower index than the one that serves the pages.
            models.Index(
                fields=["tenant", "kind", "status", "os_type", "enabled", "project_group", "name"],
                name="image_list_count",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="image_progress_lte_100"),
            models.CheckConstraint(
                condition=~models.Q(architecture__in=["aarch64", "mips64el"]) | models.Q(boot_mode="uefi"),
                name="image_arm_mips_need_uefi",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_transitional(self) -> bool:
        return self.status in self.TRANSITIONAL

    @property
    def is_cancelled(self) -> bool:
        return self.status == self.Status.FAILED and self.failure_reason == self.FailureReason.CANCELLED

    @property
    def error_text(self) -> str:
        """The error in the reader's language (as first written when it was stored as plain text)."""
        return render_words(self.error_words, self.error)

    def status_label(self) -> str:
        """The status as people read it: a cancelled import is "Cancelled", not "Import failed"."""
        if self.is_cancelled:
            return str(CANCELLED_LABEL)
        return str(self.get_status_display())


CANCELLED_LABEL = pgettext_lazy("Image status", "Cancelled")


class ImageShare(BaseModel):
    """An image shared with a chosen tenant, and that tenant's consent: it sees the image once it accepted
    (OpenStack image members: pending, accepted, rejected)."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("Share status", "Awaiting acceptance")
        ACCEPTED = "accepted", pgettext_lazy("Share status", "Accepted")
        REJECTED = "rejected", pgettext_lazy("Share status", "Rejected")

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="shares")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="image_shares")
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.PENDING, db_index=True
    )

    class Meta:
        # The table of the plain many-to-many relation this model took over (migration 0011).
        db_table = "images_image_shared_with"
        unique_together = [("image", "tenant")]
        verbose_name = _("image share")
        verbose_name_plural = _("image shares")

    def __str__(self):
        return f"{self.image} → {self.tenant} ({self.status})"


class ImageReplica(BaseModel):
    class State(models.TextChoices):
        SYNCING = "syncing", pgettext_lazy("Replica state", "Syncing")
        READY = "ready", pgettext_lazy("Replica state", "Ready")
        FAILED = "failed", pgettext_lazy("Replica state", "Failed")

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="replicas")
    storage = models.ForeignKey("storage.ImageStorage", on_delete=models.PROTECT, related_name="replicas")
    key = models.CharField(_("key"), max_length=255, help_text=_("Where the backend keeps the bytes."))
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.SYNCING)
    size = models.PositiveBigIntegerField(_("size"), default=0)
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("image replica")
        verbose_name_plural = _("image replicas")
        constraints = [
            models.UniqueConstraint(fields=["image", "storage"], name="replica_one_per_storage"),
        ]

    def __str__(self):
        return f"{self.image} @ {self.storage}"


class UploadSession(BaseModel):
    """One import's bytes on their way in: a tus or PUT upload, or a worker's fetch of a URL."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="upload")
    length = models.PositiveBigIntegerField(_("length"), null=True, blank=True)
    offset = models.PositiveBigIntegerField(_("offset"), default=0)
    staging_path = models.CharField(max_length=1024, blank=True)
    # URL imports: the URL with any password redacted, and the password kept encrypted until the fetch ends.
    source_url = models.CharField(_("source URL"), max_length=2048, blank=True)
    secret_encrypted = models.TextField(blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    # SHA256 of the bytes received (a staged file converted later; for other imports the stored replica's).
    received_sha256 = models.CharField(_("SHA256 received"), max_length=64, blank=True)
    # What the format inspection of the received bytes found (format, virtual size, encrypted).
    inspection = models.JSONField(_("inspection"), default=dict, blank=True)
    # An upload whose first bytes are compressed (images.decompress): staged as sent, decompressed by its
    # job after the last byte. Kept so that a resume in another process stages the rest the same way.
    compression = models.CharField(_("compression"), max_length=8, blank=True)
    # Times a request continued the upload at a later offset (after an interruption, or its next PATCH).
    resumes = models.PositiveIntegerField(_("resumes"), default=0)
    # Times the reconciler re-enqueued the follow-up job after Redis lost it.
    attempts = models.PositiveSmallIntegerField(_("job attempts"), default=0)
    # Everything a request needs to continue receiving at `offset` in any web process (hash midstates,
    # the storage writer's complete chunks, the format inspector): written in the same UPDATE as the
    # offset (images.services.receiving). Null: nothing received yet, or a state that could not be kept.
    receive_state = models.BinaryField(null=True, blank=True, editable=False)
    # Bytes resumed requests read back to rebuild that state (0 when every request took it over).
    bytes_reread = models.PositiveBigIntegerField(_("bytes read again"), default=0)

    class Meta:
        verbose_name = _("upload session")
        verbose_name_plural = _("upload sessions")

    def __str__(self):
        return f"{self.image} ({self.offset}/{self.length})"


class SftpHostKey(BaseModel):
    """The key an sftp server showed the first time an import used it (trust on first use, when
    IMPORT_SFTP_KNOWN_HOSTS is not set): later imports from that host and port must see the same key."""

    host = models.CharField(_("host"), max_length=255)
    port = models.PositiveIntegerField(_("port"))
    key_type = models.CharField(_("key type"), max_length=64)
    key = models.TextField(_("public key"), help_text=_("Base64, as in a known_hosts file."))
    fingerprint = models.CharField(_("fingerprint"), max_length=128)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("SFTP host key")
        verbose_name_plural = _("SFTP host keys")
        constraints = [
            models.UniqueConstraint(fields=["host", "port", "key_type"], name="sftp_host_key_one_per_type"),
        ]

    def __str__(self):
        return f"{self.host}:{self.port} {self.key_type}"


class TrustedSigningKey(BaseModel):
    """An OpenPGP public key that administrators trust to sign checksum files (SHA256SUMS.gpg, CHECKSUM.sig):
    an import with a signature URL is verified against the enabled ones."""

    name = models.CharField(_("name"), max_length=200, help_text=_("Whose key it is, e.g. “Fedora 41”."))
    armored_key = models.TextField(
        _("public key"), help_text=_("The ASCII-armoured public key (-----BEGIN PGP PUBLIC KEY BLOCK-----).")
    )
    fingerprint = models.CharField(_("fingerprint"), max_length=64, blank=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("trusted signing key")
        verbose_name_plural = _("trusted signing keys")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.fingerprint})" if self.fingerprint else self.name


class ImageCount(models.Model):
    """How many images a tenant has of each kind, status and system type, kept exact by database triggers
    on the image table (migration 0007): the list's total, unfiltered or filtered by those (the common
    filters), without counting the rows. Never written by Python."""

    tenant_id = models.BigIntegerField()
    kind = models.CharField(max_length=8)
    status = models.CharField(max_length=12)
    os_type = models.CharField(max_length=16)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "kind", "status", "os_type"], name="image_count_one_per_key"
            ),
        ]

    def __str__(self):
        return f"tenant {self.tenant_id} {self.kind}/{self.status}/{self.os_type}: {self.n}"


from .download_models import DownloadLink, DownloadSettings, ExportedImage  # noqa: E402, F401
