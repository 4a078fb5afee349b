from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.services import log

from ..hypervisor import HypervisorError, probe
from ..models import ComputeHost

URI_SCHEMES = ("qemu:", "qemu+ssh:", "qemu+tls:", "qemu+tcp:", "qemu+unix:", "qemu+libssh2:", "qemu+libssh:")


def host_create(
    *,
    name: str,
    uri: str,
    pool_name: str = "imageconsole",
    pool_path: str = "/var/lib/libvirt/images/imageconsole",
    network: str = "",
    virt_type: str = ComputeHost.VirtType.AUTO,
    enabled: bool = True,
    actor=None,
) -> ComputeHost:
    """Add a host and connect to it at once (its state says whether that worked)."""
    if not uri.startswith(URI_SCHEMES):
        raise ValidationError(
            {"uri": _("Give a QEMU libvirt URI such as qemu:///system or qemu+ssh://user@host/system.")}
        )
    host = ComputeHost(
        name=name,
        uri=uri,
        pool_name=pool_name,
        pool_path=pool_path,
        network=network,
        virt_type=virt_type,
        enabled=enabled,
    )
    host.full_clean()
    host.save()
    log(action="compute_host.create", actor=actor, target=host, message=uri)
    return host_reconnect(host=host, actor=actor)


def host_reconnect(*, host: ComputeHost, actor=None) -> ComputeHost:
    """Connect through libvirt; record connected (with CPUs, memory, pool and the domain type used) or
    disconnected with the reason."""
    now = timezone.now()
    try:
        facts = probe(host)
    except HypervisorError as error:
        ComputeHost.objects.filter(pk=host.pk).update(
            state=ComputeHost.State.DISCONNECTED, state_reason=str(error)[:500], checked_at=now
        )
        host.refresh_from_db()
        log(action="compute_host.reconnect", actor=actor, target=host, result="failure", message=str(error))
        return host
    with transaction.atomic():
        ComputeHost.objects.filter(pk=host.pk).update(
            state=ComputeHost.State.CONNECTED,
            state_reason="",
            checked_at=now,
            arch=facts.arch,
            guest_archs=facts.guest_archs,
            domain_type=facts.domain_type,
            domain_type_reason=facts.domain_type_reason[:255],
            uefi=facts.uefi,
            cpus=facts.cpus,
            memory_bytes=facts.memory_bytes,
            free_memory_bytes=facts.free_memory_bytes,
            pool_capacity=facts.pool_capacity,
            pool_available=facts.pool_available,
            updated_at=now,
        )
    host.refresh_from_db()
    log(
        action="compute_host.reconnect",
        actor=actor,
        target=host,
        message=f"{facts.domain_type} ({facts.domain_type_reason}), {facts.cpus} CPUs",
    )
    return host


def host_choose(*, hosts, memory_mib: int) -> ComputeHost | None:
    """"Automatic" placement: the usable host with the most free memory, among those with enough."""
    best = None
    for host in hosts:
        if not host.usable:
            continue
        if best is None or host.free_memory_bytes > best.free_memory_bytes:
            best = host
    return best
