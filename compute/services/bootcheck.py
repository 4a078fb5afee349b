"""Boot check: an available image booted in a throwaway VM with no network for a set time. What its
screen showed (a screenshot and a Pillow thumbnail), the serial console's last lines, the time to the
first console output, and a verdict: "No bootable device" and kernel panics are recognised as failures.
The VM and its volumes are removed whatever happens; the image's cache entry stays."""

import io
import logging
import re
import time

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from images.models import Image
from tenants.services import log

from .. import hypervisor
from ..hypervisor import DomainSpec, HypervisorError
from ..models import BootCheck, ComputeHost
from .cache import CacheError, cache_ensure
from .hosts import host_choose
from .vms import GB, min_disk_gb

logger = logging.getLogger("compute.bootcheck")

CONSOLE_BYTES = 64 * 1024
FAILURES = [
    # SeaBIOS; UEFI firmware without a shell ("No bootable option or device was found").
    (re.compile(r"No bootable (option or )?device", re.I), "no_boot"),
    (re.compile(r"Kernel panic", re.I), "panic"),
]
THUMBNAIL_WIDTH = 320


def check_message(state: str, finding: str) -> str:
    return str(BootCheck.FINDINGS.get(finding, finding)) if state != BootCheck.State.ERROR else finding


def boot_check_seconds() -> int:
    return int(getattr(settings, "COMPUTE_BOOT_CHECK_SECONDS", 60))


def boot_check_start(*, image: Image, actor=None, request=None) -> BootCheck:
    if image.status != Image.Status.AVAILABLE or image.kind != Image.Kind.SYSTEM:
        raise ValidationError(_("Only an available system image can be boot-checked."))
    host = host_choose(hosts=ComputeHost.objects.filter(enabled=True), memory_mib=512)
    if host is None:
        raise ValidationError(
            _("No compute host is enabled and connected. Ask an administrator to add or reconnect one.")
        )
    if image.architecture not in (host.guest_archs or []):
        raise ValidationError(
            _("The image is %(arch)s, which %(host)s cannot run (it runs %(archs)s).")
            % {"arch": image.architecture, "host": host.name, "archs": ", ".join(host.guest_archs or [])}
        )
    with transaction.atomic():
        if BootCheck.objects.filter(image=image, state=BootCheck.State.RUNNING).exists():
            raise ValidationError(_("A boot check of this image is running already."))
        check = BootCheck.objects.create(tenant=image.tenant, image=image, host=host)
        log(
            action="image.boot_check",
            tenant=image.tenant,
            actor=actor,
            target=image,
            result="started",
            request=request,
        )
        transaction.on_commit(
            lambda: django_rq.get_queue("default").enqueue(
                "compute.jobs.boot_check_job",
                check_id=str(check.pk),
                job_timeout=boot_check_seconds() + 6 * 3600,
            )
        )
    return check


# OVMF with its UEFI shell: when no boot option starts anything it runs the shell, which waits at its
# prompt (after running a startup.nsh, if the disk has one: then the prompt is followed by what that
# started). Read only when the watch is over: the prompt is the last line for a moment on its way too.
UEFI_SHELL_PROMPT = re.compile(r"^(FS\d+:\\)?Shell>\s*$|^FS\d+:\\>\s*$")


def classify(console: str, *, finished: bool = True) -> tuple[str, str]:
    """(state, finding) from what the console showed; the finding is a code BootCheck.finding_text reads.
    `finished`: the watch is over (a UEFI shell prompt as the last line then means nothing booted)."""
    for pattern, kind in FAILURES:
        if pattern.search(console):
            return BootCheck.State.FAILED, kind
    lines = [line for line in console.split("\n") if line.strip()]
    if finished and lines and UEFI_SHELL_PROMPT.match(lines[-1].strip()):
        return BootCheck.State.FAILED, "uefi_shell"
    if not console.strip():
        return BootCheck.State.SILENT, "silent"
    return BootCheck.State.PASSED, "passed"


def _thumbnail(png: bytes) -> bytes:
    from PIL import Image as PILImage

    picture = PILImage.open(io.BytesIO(png))
    picture.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _clean(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[c()][0-9A-Za-z]?|\r", "", text)


def boot_check_run(*, check_id) -> None:
    check = BootCheck.objects.select_related("image", "host").filter(pk=check_id).first()
    if check is None or check.state != BootCheck.State.RUNNING:
        return
    image, host = check.image, check.host
    disk, console_volume = f"{check.domain_name}-disk.qcow2", f"{check.domain_name}-console.log"
    duration = boot_check_seconds()
    console, png, first_output, watched = "", None, None, 0.0
    try:
        entry = cache_ensure(host=host, image=image)
        disk_path = hypervisor.create_overlay(
            host,
            name=disk,
            backing_path=entry.path,
            backing_format=entry.disk_format,
            capacity=min_disk_gb(image) * GB,
        )
        console_path = hypervisor.create_empty(host, name=console_volume)
        spec = DomainSpec(
            name=check.domain_name,
            domain_type=host.domain_type or "qemu",
            arch=image.architecture,
            vcpus=1,
            memory_mib=512,
            boot_mode=image.boot_mode,
            virtio=image.virtio,
            disk_path=disk_path,
            console_path=console_path,
        )
        hypervisor.define_and_start(host, spec)
        started = time.monotonic()
        while True:
            watched = time.monotonic() - started
            console = _clean(hypervisor.read_tail(host, name=console_volume, nbytes=CONSOLE_BYTES))
            if console.strip() and first_output is None:
                first_output = watched
            if classify(console, finished=False)[0] == BootCheck.State.FAILED or watched >= duration:
                break
            time.sleep(1)
        png = hypervisor.screenshot(host, check.domain_name)
        state, message = classify(console)
    except (HypervisorError, CacheError) as error:
        state, message = BootCheck.State.ERROR, str(error)[:255]
    finally:
        try:
            hypervisor.undefine(host, check.domain_name)
            hypervisor.delete_volumes(host, [disk, console_volume])
        except HypervisorError:
            logger.warning("boot check %s: could not remove its VM from %s", check.pk, host, exc_info=True)
    lines = [line for line in console.split("\n") if line.strip()][-40:]
    BootCheck.objects.filter(pk=check.pk).update(
        state=state,
        message=message[:255],
        seconds=round(watched),
        first_output_seconds=first_output,
        console="\n".join(lines),
        screenshot=png,
        thumbnail=_thumbnail(png) if png else None,
        finished_at=timezone.now(),
    )
    log(
        action="image.boot_check",
        tenant=check.tenant,
        target=image,
        result="success" if state == BootCheck.State.PASSED else "failure",
        message=check_message(state, message),
    )
