"""VMs from images: create (checks, quotas, the job that provisions), state from libvirt, actions.

A VM's disk is a qcow2 overlay volume on the image's cache entry; with cloud-init the administrator
password goes to the guest in a NoCloud seed volume; its serial console writes to a volume in the pool,
read back through libvirt.
"""

import logging
import math
import re
import time
import uuid
from datetime import timedelta

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from images.models import Image
from tenants.models import Quota, Tenant
from tenants.services import log, quota_lock

from .. import hypervisor
from ..hypervisor import DomainSpec, HypervisorError
from ..models import ComputeHost, VirtualMachine
from .cache import CacheError, cache_ensure
from .hosts import host_choose
from .seed import hash_password, seed_iso

logger = logging.getLogger("compute.vms")

GB = 1000**3
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
VCPUS_MAX = 64
MEMORY_MIN_MIB, MEMORY_MAX_MIB = 64, 1024 * 1024
DISK_MAX_GB = 2000
PASSWORD_MIN = 8
CONSOLE_BYTES = 16 * 1024


class VMActionRefused(Exception):
    """An action that cannot be taken in the VM's state; the message says why."""


def stop_timeout() -> float:
    return float(getattr(settings, "COMPUTE_STOP_TIMEOUT", 60))


def reboot_timeout() -> float:
    return float(getattr(settings, "COMPUTE_REBOOT_TIMEOUT", 60))


def stage_lost_after() -> timedelta:
    """How long a stop or reboot may show its stage before the state refresh takes it for lost."""
    return timedelta(seconds=max(stop_timeout(), reboot_timeout()) + 300)


def min_disk_gb(image: Image) -> int:
    return max(1, math.ceil((image.virtual_size or image.size or 0) / GB))


def _quota_check(*, tenant: Tenant, vcpus: int, memory_mib: int) -> None:
    quota = Quota.objects.filter(tenant=tenant).first()
    if quota is None:
        return
    vms = VirtualMachine.objects.filter(tenant=tenant)
    if quota.max_vms is not None and vms.count() + 1 > quota.max_vms:
        raise ValidationError(
            _(
                "The tenant's quota allows %(limit)d VMs and %(used)d exist. Delete a VM or ask an administrator to raise the quota."
            )
            % {"limit": quota.max_vms, "used": vms.count()},
            code="quota_vms",
        )
    totals = vms.aggregate(vcpus=Sum("vcpus"), memory=Sum("memory_mib"))
    used_vcpus, used_memory = totals["vcpus"] or 0, totals["memory"] or 0
    if quota.max_vcpus is not None and used_vcpus + vcpus > quota.max_vcpus:
        raise ValidationError(
            {
                "vcpus": _("The tenant's quota allows %(limit)d vCPUs and %(used)d are in use.")
                % {"limit": quota.max_vcpus, "used": used_vcpus}
            },
            code="quota_vcpus",
        )
    if quota.max_memory_mib is not None and used_memory + memory_mib > quota.max_memory_mib:
        raise ValidationError(
            {
                "memory_mib": _(
                    "The tenant's quota allows %(limit)d MiB of VM memory and %(used)d MiB are in use."
                )
                % {"limit": quota.max_memory_mib, "used": used_memory}
            },
            code="quota_memory",
        )


def vm_create(
    *,
    tenant: Tenant,
    image: Image,
    name: str,
    vcpus: int,
    memory_mib: int,
    disk_gb: int | None = None,
    host: ComputeHost | None = None,
    hosts=None,
    network: str | None = None,
    admin_password: str = "",
    project_group=None,
    actor=None,
    request=None,
) -> VirtualMachine:
    """Create a VM from an image: checks every rule, then the VM exists in `creating` and a job
    provisions it on the host (cache, overlay, seed, domain). `hosts` are the candidates for automatic
    placement. Raises ValidationError naming the field."""
    errors: dict[str, list] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not NAME_RE.match(name or ""):
        refuse("name", _("Use 1 to 63 letters, digits and hyphens, starting with a letter or digit."))
    elif VirtualMachine.objects.filter(tenant=tenant, name=name).exists():
        refuse("name", _("A VM named “%(name)s” exists already.") % {"name": name})
    if image.status != Image.Status.AVAILABLE:
        refuse("image", _("“%(name)s” is not available.") % {"name": image.name})
    elif not image.enabled:
        refuse("image", _("“%(name)s” is disabled; enable it to create VMs from it.") % {"name": image.name})
    elif image.kind != Image.Kind.SYSTEM:
        refuse("image", _("Only a system image can be a VM's disk."))
    if not 1 <= (vcpus or 0) <= VCPUS_MAX:
        refuse("vcpus", _("Choose 1 to %(max)d vCPUs.") % {"max": VCPUS_MAX})
    if not MEMORY_MIN_MIB <= (memory_mib or 0) <= MEMORY_MAX_MIB:
        refuse(
            "memory_mib",
            _("Choose %(min)d MiB to %(max)d MiB of memory.")
            % {"min": MEMORY_MIN_MIB, "max": MEMORY_MAX_MIB},
        )
    smallest = min_disk_gb(image)
    disk_gb = disk_gb or smallest
    if disk_gb < smallest:
        refuse(
            "disk_gb",
            _("The disk must be at least the image's virtual size: %(min)d GB.") % {"min": smallest},
        )
    elif disk_gb > DISK_MAX_GB:
        refuse("disk_gb", _("At most %(max)d GB.") % {"max": DISK_MAX_GB})
    if admin_password:
        if image.encrypted:
            refuse(
                "admin_password",
                _("The image is encrypted: its key cannot be changed, so no password can be set."),
            )
        elif not image.cloud_init:
            refuse(
                "admin_password",
                _(
                    "The image does not declare cloud-init, so the password cannot be applied; leave it empty."
                ),
            )
        elif len(admin_password) < PASSWORD_MIN:
            refuse("admin_password", _("Use at least %(min)d characters.") % {"min": PASSWORD_MIN})
    if host is None:
        host = host_choose(
            hosts=hosts if hosts is not None else ComputeHost.objects.all(), memory_mib=memory_mib or 0
        )
        if host is None:
            refuse(
                "host",
                _("No compute host is enabled and connected. Ask an administrator to add or reconnect one."),
            )
    elif not host.usable:
        refuse("host", _("%(host)s is disabled or disconnected; choose another host.") % {"host": host.name})
    if host is not None and host.usable and image.architecture not in (host.guest_archs or []):
        refuse(
            "host",
            _("The image is %(arch)s, which %(host)s cannot run (it runs %(archs)s).")
            % {
                "arch": image.architecture,
                "host": host.name,
                "archs": ", ".join(host.guest_archs or []) or "-",
            },
        )
    if host is not None and host.usable and image.boot_mode == Image.BootMode.UEFI and not host.uefi:
        refuse(
            "host",
            _("The image boots with UEFI and %(host)s has no UEFI firmware (install ovmf).")
            % {"host": host.name},
        )
    if network is None:
        network = host.network if host is not None else ""
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        quota_lock(tenant=tenant)
        _quota_check(tenant=tenant, vcpus=vcpus, memory_mib=memory_mib)
        vm_id = uuid.uuid4()
        vm = VirtualMachine.objects.create(
            id=vm_id,
            tenant=tenant,
            project_group=project_group
            if project_group is not None
            else image.project_group
            if image.tenant_id == tenant.pk
            else None,
            owner=actor if actor is not None and getattr(actor, "pk", None) else None,
            name=name,
            image=image,
            host=host,
            vcpus=vcpus,
            memory_mib=memory_mib,
            disk_gb=disk_gb,
            network=network,
            boot_mode=image.boot_mode,
            domain_name=f"ic-{vm_id}",
            state=VirtualMachine.State.CREATING,
            stage=gettext_noop("Queued"),
        )
        password_hash = hash_password(admin_password) if admin_password else ""
        log(
            action="vm.create",
            tenant=tenant,
            actor=actor,
            target=vm,
            result="started",
            message=f"{image.name} on {host.name}: {vcpus} vCPU, {memory_mib} MiB, {disk_gb} GB",
            request=request,
        )
        transaction.on_commit(
            lambda: django_rq.get_queue("default").enqueue(
                "compute.jobs.vm_provision_job",
                vm_id=str(vm_id),
                password_hash=password_hash,
                job_timeout=6 * 3600,
            )
        )
    return vm


def _stage(vm: VirtualMachine, text: str) -> None:
    """`text`: an English msgid (gettext_noop), worded for each reader when shown (VirtualMachine.stage_text)."""
    VirtualMachine.objects.filter(pk=vm.pk).update(stage=text, updated_at=timezone.now())


def vm_provision(*, vm_id, password_hash: str = "") -> None:
    """The job's work: the image in the host's cache, the overlay, the seed, the domain, started."""
    vm = VirtualMachine.objects.select_related("host", "image").filter(pk=vm_id).first()
    if vm is None or vm.state != VirtualMachine.State.CREATING:
        return
    host, image = vm.host, vm.image
    try:
        _stage(vm, gettext_noop("Uploading the image to the host"))
        entry = cache_ensure(host=host, image=image)
        VirtualMachine.objects.filter(pk=vm.pk).update(cache_entry=entry)
        _stage(vm, gettext_noop("Creating the disk"))
        disk_volume = f"{vm.domain_name}-disk.qcow2"
        disk_path = hypervisor.create_overlay(
            host,
            name=disk_volume,
            backing_path=entry.path,
            backing_format=entry.disk_format,
            capacity=vm.disk_gb * GB,
        )
        VirtualMachine.objects.filter(pk=vm.pk).update(disk_volume=disk_volume)
        seed_path, seed_volume = "", ""
        if image.cloud_init:
            seed = seed_iso(instance_id=str(vm.pk), hostname=vm.name, password_hash=password_hash)
            seed_volume = f"{vm.domain_name}-seed.iso"
            seed_path = hypervisor.upload_volume(host, name=seed_volume, size=len(seed), blocks=[seed])
        console_volume = f"{vm.domain_name}-console.log"
        console_path = hypervisor.create_empty(host, name=console_volume)
        VirtualMachine.objects.filter(pk=vm.pk).update(
            seed_volume=seed_volume, console_volume=console_volume, password_applied=bool(password_hash)
        )
        _stage(vm, gettext_noop("Starting"))
        spec = DomainSpec(
            name=vm.domain_name,
            domain_type=host.domain_type or "qemu",
            arch=image.architecture,
            vcpus=vm.vcpus,
            memory_mib=vm.memory_mib,
            boot_mode=image.boot_mode,
            virtio=image.virtio,
            disk_path=disk_path,
            seed_path=seed_path,
            console_path=console_path,
            network=vm.network,
        )
        hypervisor.define_and_start(host, spec)
    except (HypervisorError, CacheError) as error:
        _fail(vm, str(error))
        return
    now = timezone.now()
    VirtualMachine.objects.filter(pk=vm.pk, state=VirtualMachine.State.CREATING).update(
        state=VirtualMachine.State.RUNNING,
        stage="",
        error="",
        started_at=now,
        state_checked_at=now,
        updated_at=now,
    )
    log(action="vm.create", tenant=vm.tenant, target=vm, message=f"{vm.domain_name} running on {host.name}")


def _fail(vm: VirtualMachine, message: str) -> None:
    logger.warning("VM %s: %s", vm.pk, message)
    VirtualMachine.objects.filter(pk=vm.pk).update(
        state=VirtualMachine.State.ERROR, stage="", error=message, updated_at=timezone.now()
    )
    log(action="vm.create", tenant=vm.tenant, target=vm, result="failure", message=message)


# --- state ---------------------------------------------------------------------------------------------


def vm_refresh_states(*, vms=None) -> int:
    """Read the state of VMs (all, or those given) from libvirt; VMs still being created are left.
    Returns how many changed."""
    queryset = vms if vms is not None else VirtualMachine.objects.all()
    by_host: dict[int, list[VirtualMachine]] = {}
    for vm in queryset.exclude(state=VirtualMachine.State.CREATING).select_related("host"):
        by_host.setdefault(vm.host_id, []).append(vm)
    changed = 0
    now = timezone.now()
    for machines in by_host.values():
        host = machines[0].host
        try:
            states = hypervisor.domain_states(host, [vm.domain_name for vm in machines])
        except HypervisorError as error:
            logger.info("state refresh on %s: %s", host, error)
            continue
        for vm in machines:
            state = states.get(vm.domain_name)
            if state is None and vm.state == VirtualMachine.State.ERROR:
                continue  # failed while being created: its message stays
            new = state or VirtualMachine.State.ERROR
            error = "" if state else _("The VM is missing from %(host)s.") % {"host": host.name}
            updates = {"state_checked_at": now}
            if vm.stage and vm.updated_at < now - stage_lost_after():
                # Stopping or rebooting whose job was lost (its worker killed): the actions come back.
                updates.update(stage="", updated_at=now)
            if new != vm.state or (state and vm.error):
                updates.update(state=new, error=error, updated_at=now)
            if len(updates) > 1:
                changed += 1
            VirtualMachine.objects.filter(pk=vm.pk).update(**updates)
    return changed


def vm_refresh(vm: VirtualMachine) -> VirtualMachine:
    vm_refresh_states(vms=VirtualMachine.objects.filter(pk=vm.pk))
    vm.refresh_from_db()
    return vm


# --- actions -------------------------------------------------------------------------------------------


def _action(vm: VirtualMachine, action: str, *, actor, request, log_action: str) -> VirtualMachine:
    try:
        hypervisor.domain_action(vm.host, vm.domain_name, action)
    except HypervisorError as error:
        log(
            action=log_action,
            tenant=vm.tenant,
            actor=actor,
            target=vm,
            result="failure",
            message=str(error),
            request=request,
        )
        raise VMActionRefused(str(error)) from error
    vm = vm_refresh(vm)
    log(action=log_action, tenant=vm.tenant, actor=actor, target=vm, request=request, message=vm.state)
    return vm


def _require(vm: VirtualMachine, states, message: str) -> None:
    if vm.state not in states:
        raise VMActionRefused(message % {"name": vm.name, "state": vm.get_state_display()})


def vm_start(*, vm: VirtualMachine, actor=None, request=None) -> VirtualMachine:
    _require(
        vm, {VirtualMachine.State.STOPPED}, _("“%(name)s” is %(state)s; only a stopped VM can be started.")
    )
    return _action(vm, "start", actor=actor, request=request, log_action="vm.start")


def vm_reboot(*, vm: VirtualMachine, actor=None, request=None, enqueue: bool = True) -> VirtualMachine:
    """A job reboots the VM through ACPI, and resets it if the guest has not reacted after the reboot
    timeout; the VM records which of the two happened (last_reboot) and the OperationLog says it."""
    _require(
        vm, {VirtualMachine.State.RUNNING}, _("“%(name)s” is %(state)s; only a running VM can be rebooted.")
    )
    VirtualMachine.objects.filter(pk=vm.pk).update(stage=gettext_noop("Rebooting"), updated_at=timezone.now())
    return _started(
        vm,
        "vm.reboot",
        "ACPI reboot",
        "compute.jobs.vm_reboot_job",
        reboot_timeout(),
        actor,
        request,
        enqueue,
    )


def _started(vm, action: str, message: str, job: str, timeout: float, actor, request, enqueue: bool):
    """Log an ACPI request as started and enqueue the job that waits for the guest (and forces it)."""
    log(
        action=action,
        tenant=vm.tenant,
        actor=actor,
        target=vm,
        result="started",
        message=message,
        request=request,
    )
    if enqueue:
        transaction.on_commit(
            lambda: django_rq.get_queue("default").enqueue(
                job, vm_id=str(vm.pk), job_timeout=int(timeout) + 120
            )
        )
    vm.refresh_from_db()
    return vm


def vm_reboot_wait(*, vm_id) -> None:
    """The reboot job: ACPI reboot, reset after the timeout; records and logs which happened."""
    vm = VirtualMachine.objects.select_related("host").filter(pk=vm_id).first()
    if vm is None:
        return
    started = time.monotonic()
    try:
        how = hypervisor.reboot(vm.host, vm.domain_name, timeout=reboot_timeout())
    except HypervisorError as error:
        VirtualMachine.objects.filter(pk=vm.pk).update(stage="", updated_at=timezone.now())
        log(action="vm.reboot", tenant=vm.tenant, target=vm, result="failure", message=str(error))
        return
    now = timezone.now()
    VirtualMachine.objects.filter(pk=vm.pk).update(
        stage="", last_reboot=how, last_reboot_at=now, updated_at=now
    )
    log(
        action="vm.reboot",
        tenant=vm.tenant,
        target=vm,
        message=_("rebooted through ACPI")
        if how == hypervisor.REBOOT_ACPI
        # A host that cannot reboot through ACPI resets at once: the seconds waited say so.
        else _("reset after %(seconds)d s without an ACPI reboot")
        % {"seconds": round(min(time.monotonic() - started, reboot_timeout()))},
    )


def vm_stop(*, vm: VirtualMachine, actor=None, request=None, enqueue: bool = True) -> VirtualMachine:
    """ACPI shutdown now; a job powers the VM off if it is still running after the stop timeout."""
    _require(
        vm, {VirtualMachine.State.RUNNING}, _("“%(name)s” is %(state)s; only a running VM can be stopped.")
    )
    try:
        hypervisor.domain_action(vm.host, vm.domain_name, "shutdown")
    except HypervisorError as error:
        raise VMActionRefused(str(error)) from error
    VirtualMachine.objects.filter(pk=vm.pk).update(
        stop_requested_at=timezone.now(), stage=gettext_noop("Stopping"), updated_at=timezone.now()
    )
    return _started(
        vm, "vm.stop", "ACPI shutdown", "compute.jobs.vm_stop_job", stop_timeout(), actor, request, enqueue
    )


def vm_stop_wait(*, vm_id) -> None:
    """The stop job: wait for the guest to power off, then force it."""
    vm = VirtualMachine.objects.select_related("host").filter(pk=vm_id).first()
    if vm is None:
        return
    deadline = time.monotonic() + stop_timeout()
    forced = False
    while True:
        state = hypervisor.domain_states(vm.host, [vm.domain_name]).get(vm.domain_name)
        if state != VirtualMachine.State.RUNNING:
            break
        if time.monotonic() >= deadline:
            hypervisor.domain_action(vm.host, vm.domain_name, "destroy")
            forced = True
            break
        time.sleep(1)
    VirtualMachine.objects.filter(pk=vm.pk).update(stage="")
    vm = vm_refresh(vm)
    log(
        action="vm.stop",
        tenant=vm.tenant,
        target=vm,
        message=_("powered off after %(seconds)d s without an ACPI shutdown") % {"seconds": stop_timeout()}
        if forced
        else _("shut down"),
    )


def vm_delete(*, vm: VirtualMachine, actor=None, request=None) -> None:
    """Power off, undefine, delete the overlay, seed and console volumes, and the row. The image's cache
    entry stays for the next VM."""
    if vm.state == VirtualMachine.State.CREATING:
        raise VMActionRefused(_("“%(name)s” is being created; delete it when that ends.") % {"name": vm.name})
    try:
        hypervisor.undefine(vm.host, vm.domain_name)
        hypervisor.delete_volumes(vm.host, [vm.disk_volume, vm.seed_volume, vm.console_volume])
    except HypervisorError as error:
        log(
            action="vm.delete",
            tenant=vm.tenant,
            actor=actor,
            target=vm,
            result="failure",
            message=str(error),
            request=request,
        )
        raise VMActionRefused(str(error)) from error
    log(action="vm.delete", tenant=vm.tenant, actor=actor, target=vm, request=request, message=vm.domain_name)
    vm.delete()


# --- what the guest shows ------------------------------------------------------------------------------


def vm_console_tail(*, vm: VirtualMachine, lines: int = 40) -> list[str]:
    """The last lines the guest wrote to its serial console (read from the pool through libvirt)."""
    if not vm.console_volume:
        return []
    try:
        data = hypervisor.read_tail(vm.host, name=vm.console_volume, nbytes=CONSOLE_BYTES)
    except HypervisorError:
        return []
    text = data.decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[c()][0-9A-Za-z]?|\r", "", text)
    return [line for line in text.split("\n") if line.strip()][-lines:]


def vm_screenshot(*, vm: VirtualMachine) -> bytes | None:
    try:
        return hypervisor.screenshot(vm.host, vm.domain_name)
    except HypervisorError:
        return None
