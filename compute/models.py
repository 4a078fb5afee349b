import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from imageconsole.core.models import BaseModel


class ComputeHost(BaseModel):
    """A KVM host reached through libvirt. Platform-wide, managed by administrators in Django admin."""

    class State(models.TextChoices):
        CONNECTED = "connected", pgettext_lazy("Compute host state", "Connected")
        DISCONNECTED = "disconnected", pgettext_lazy("Compute host state", "Disconnected")

    class VirtType(models.TextChoices):
        AUTO = "auto", pgettext_lazy("Virtualisation", "Automatic")
        KVM = "kvm", "KVM"
        QEMU = "qemu", pgettext_lazy("Virtualisation", "QEMU emulation (TCG)")

    name = models.CharField(_("name"), max_length=64, unique=True)
    uri = models.CharField(
        _("libvirt URI"),
        max_length=255,
        help_text=_(
            "qemu:///system for this machine, qemu+ssh://user@host/system or qemu+tls://host/system."
        ),
    )
    pool_name = models.CharField(
        _("storage pool"),
        max_length=64,
        default="imageconsole",
        help_text=_("The libvirt pool for the image cache and VM disks; a dir pool is created when missing."),
    )
    pool_path = models.CharField(
        _("pool directory"),
        max_length=255,
        default="/var/lib/libvirt/images/imageconsole",
        help_text=_("Directory of the dir pool created when the pool is missing (on the host)."),
    )
    network = models.CharField(
        _("network"),
        max_length=64,
        blank=True,
        help_text=_("The libvirt network VM NICs attach to; empty for VMs without a NIC."),
    )
    virt_type = models.CharField(
        _("virtualisation"),
        max_length=8,
        choices=VirtType.choices,
        default=VirtType.AUTO,
        help_text=_(
            "Automatic uses KVM when libvirt offers it and the host is not itself a VM (nested KVM is "
            "unreliable), QEMU emulation otherwise."
        ),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.DISCONNECTED)
    state_reason = models.CharField(_("reason"), max_length=500, blank=True)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True)
    domain_type = models.CharField(
        _("domain type"),
        max_length=8,
        blank=True,
        help_text=_("What VMs on this host run under: kvm or qemu."),
    )
    domain_type_reason = models.CharField(_("why this domain type"), max_length=255, blank=True)
    arch = models.CharField(_("host architecture"), max_length=16, blank=True)
    guest_archs = models.JSONField(_("guest architectures"), default=list, blank=True)
    uefi = models.BooleanField(_("UEFI firmware"), default=False)
    cpus = models.PositiveIntegerField(_("CPUs"), default=0)
    memory_bytes = models.PositiveBigIntegerField(_("memory"), default=0)
    free_memory_bytes = models.PositiveBigIntegerField(_("free memory"), default=0)
    pool_capacity = models.PositiveBigIntegerField(_("pool capacity"), default=0)
    pool_available = models.PositiveBigIntegerField(_("pool free"), default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = _("compute host")
        verbose_name_plural = _("compute hosts")

    def __str__(self):
        return self.name

    @property
    def usable(self) -> bool:
        return self.enabled and self.state == self.State.CONNECTED


class ImageCacheEntry(BaseModel):
    """An image uploaded once into a host's pool, keyed by its SHA256; VM disks are overlays on it."""

    class State(models.TextChoices):
        UPLOADING = "uploading", pgettext_lazy("Cache entry state", "Uploading")
        READY = "ready", pgettext_lazy("Cache entry state", "Ready")
        FAILED = "failed", pgettext_lazy("Cache entry state", "Failed")

    host = models.ForeignKey(ComputeHost, on_delete=models.CASCADE, related_name="cache_entries")
    image = models.ForeignKey(
        "images.Image",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("image"),
    )
    image_name = models.CharField(_("image name"), max_length=128, blank=True)
    sha256 = models.CharField(_("SHA256"), max_length=64)
    disk_format = models.CharField(_("format"), max_length=8)
    volume = models.CharField(_("volume"), max_length=128)
    path = models.CharField(_("path"), max_length=512, blank=True)
    size = models.PositiveBigIntegerField(_("size"), default=0)
    bytes_uploaded = models.PositiveBigIntegerField(_("bytes uploaded"), default=0)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.UPLOADING)
    error = models.TextField(_("error"), blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        ordering = ["host", "-last_used_at"]
        verbose_name = _("image cache entry")
        verbose_name_plural = _("image cache entries")
        constraints = [
            models.UniqueConstraint(
                fields=["host", "sha256", "disk_format"], name="cache_one_per_host_sha256"
            ),
        ]

    def __str__(self):
        return f"{self.image_name or self.sha256[:12]} @ {self.host}"


class VirtualMachine(BaseModel):
    class State(models.TextChoices):
        CREATING = "creating", pgettext_lazy("VM state", "Creating")
        RUNNING = "running", pgettext_lazy("VM state", "Running")
        STOPPED = "stopped", pgettext_lazy("VM state", "Stopped")
        ERROR = "error", pgettext_lazy("VM state", "Error")

    # States whose rows poll themselves.
    TRANSITIONAL = frozenset({State.CREATING})

    id = models.UUIDField(_("resource ID"), primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="vms")
    project_group = models.ForeignKey(
        "tenants.ProjectGroup",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="vms",
        verbose_name=_("project group"),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(_("name"), max_length=64)
    # PROTECT: an image a VM's disk is built on cannot disappear under it (images' in-use guard reads this).
    image = models.ForeignKey(
        "images.Image", on_delete=models.PROTECT, related_name="vms", verbose_name=_("image")
    )
    host = models.ForeignKey(
        ComputeHost, on_delete=models.PROTECT, related_name="vms", verbose_name=_("host")
    )
    cache_entry = models.ForeignKey(
        ImageCacheEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="vms"
    )
    vcpus = models.PositiveSmallIntegerField(_("vCPUs"), default=1)
    memory_mib = models.PositiveIntegerField(_("memory (MiB)"), default=512)
    disk_gb = models.PositiveIntegerField(_("disk (GB)"), default=1)
    network = models.CharField(_("network"), max_length=64, blank=True)
    boot_mode = models.CharField(_("boot mode"), max_length=8, default="bios")
    domain_name = models.CharField(_("libvirt domain"), max_length=64, unique=True)
    disk_volume = models.CharField(_("disk volume"), max_length=128, blank=True)
    seed_volume = models.CharField(_("seed volume"), max_length=128, blank=True)
    console_volume = models.CharField(_("console volume"), max_length=128, blank=True)
    password_applied = models.BooleanField(_("administrator password set"), default=False)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.CREATING, db_index=True
    )
    stage = models.CharField(_("stage"), max_length=32, blank=True)
    error = models.TextField(_("error"), blank=True)
    state_checked_at = models.DateTimeField(_("state read"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)

    class Reboot(models.TextChoices):
        ACPI = "acpi", pgettext_lazy("VM reboot", "ACPI reboot: the guest restarted itself")
        RESET = (
            "reset",
            pgettext_lazy("VM reboot", "Reset: the guest did not react to the ACPI reboot in time"),
        )

    last_reboot = models.CharField(_("last reboot"), max_length=8, choices=Reboot.choices, blank=True)
    last_reboot_at = models.DateTimeField(_("last reboot at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("virtual machine")
        verbose_name_plural = _("virtual machines")
        indexes = [models.Index(fields=["tenant", "-created_at"], name="vm_tenant_created")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="vm_unique_name_per_tenant"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_transitional(self) -> bool:
        return self.state in self.TRANSITIONAL

    @property
    def stage_text(self) -> str:
        """The stage (stored as its English msgid) in the reader's language."""
        return gettext(self.stage) if self.stage else ""


class BootCheck(BaseModel):
    """An image booted in a throwaway VM with no network for a set time: what its screen and serial console
    showed, and how long it took to the first console output."""

    class State(models.TextChoices):
        RUNNING = "running", pgettext_lazy("Boot check state", "Running")
        PASSED = "passed", pgettext_lazy("Boot check state", "Booted")
        FAILED = "failed", pgettext_lazy("Boot check state", "Failed")
        SILENT = "silent", pgettext_lazy("Boot check state", "No console output")
        ERROR = "error", pgettext_lazy("Boot check state", "Could not run")

    # What `message` holds for a check that ran (a code, translated when shown); a check that could not run
    # keeps the error itself.
    FINDINGS = {
        "no_boot": _("No bootable device: the disk has no boot loader the firmware can start."),
        "uefi_shell": _(
            "No bootable device: the UEFI firmware found nothing to start on the disk and waits in its shell."
        ),
        "panic": _("Kernel panic: the system started but its kernel stopped."),
        "silent": _("Nothing was written to the serial console; see the screen."),
        "passed": _("The system started and wrote to its console."),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(
        "images.Image", on_delete=models.CASCADE, related_name="+", verbose_name=_("image")
    )
    host = models.ForeignKey(ComputeHost, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(_("result"), max_length=8, choices=State.choices, default=State.RUNNING)
    message = models.CharField(_("finding"), max_length=255, blank=True)
    seconds = models.PositiveIntegerField(_("seconds watched"), default=0)
    first_output_seconds = models.FloatField(_("time to first console output"), null=True, blank=True)
    console = models.TextField(_("console"), blank=True)
    screenshot = models.BinaryField(_("screenshot"), null=True, blank=True)
    thumbnail = models.BinaryField(_("thumbnail"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("boot check")
        verbose_name_plural = _("boot checks")

    def __str__(self):
        return f"{self.image_id} {self.state}"

    @property
    def domain_name(self) -> str:
        return f"ic-check-{self.pk}"

    @property
    def finding_text(self) -> str:
        return self.FINDINGS.get(self.message, self.message)
