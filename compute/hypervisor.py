"""Everything the console asks of a hypervisor, through libvirt-python: nothing is simulated.

Functions take a ComputeHost (for its URI, pool and network) and open their own connection; a libvirt
error becomes HypervisorError with a message a person can act on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import libvirt
from django.utils.translation import gettext as _

logger = logging.getLogger("compute.hypervisor")

# Blocks sent to or read from a libvirt stream (constant memory whatever the volume's size).
STREAM_BLOCK = 4 * 1024 * 1024
# libvirt prints every error to stderr by default; errors are raised as exceptions instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class HypervisorError(Exception):
    """A libvirt call failed; the message says what and on which host."""


@dataclass
class HostFacts:
    arch: str
    guest_archs: list[str]
    domain_type: str
    domain_type_reason: str
    uefi: bool
    cpus: int
    memory_bytes: int
    free_memory_bytes: int
    pool_capacity: int
    pool_available: int


@contextlib.contextmanager
def connect(host):
    try:
        conn = libvirt.open(host.uri)
    except libvirt.libvirtError as error:
        raise HypervisorError(
            _("Cannot connect to %(host)s at %(uri)s: %(error)s")
            % {"host": host.name, "uri": host.uri, "error": error.get_error_message()}
        ) from error
    try:
        yield conn
    except libvirt.libvirtError as error:
        raise HypervisorError(
            _("%(host)s: %(error)s") % {"host": host.name, "error": error.get_error_message()}
        ) from error
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


# --- the host ------------------------------------------------------------------------------------------


def ensure_pool(conn, host):
    """The host's pool, active; a dir pool at `pool_path` is defined, built and started when missing."""
    try:
        pool = conn.storagePoolLookupByName(host.pool_name)
    except libvirt.libvirtError:
        xml = (
            f"<pool type='dir'><name>{escape(host.pool_name)}</name>"
            f"<target><path>{escape(host.pool_path)}</path></target></pool>"
        )
        pool = conn.storagePoolDefineXML(xml, 0)
        pool.build(0)
        pool.setAutostart(1)
    if not pool.isActive():
        pool.create(0)
    return pool


def probe(host) -> HostFacts:
    """Connect, make sure the pool exists, and read what the console needs to place VMs."""
    with connect(host) as conn:
        caps = ET.fromstring(conn.getCapabilities())
        arch = caps.findtext("host/cpu/arch") or ""
        nested = caps.find("host/cpu/feature[@name='hypervisor']") is not None
        guest_archs, kvm = [], False
        for guest in caps.findall("guest"):
            if guest.findtext("os_type") != "hvm":
                continue
            arch_el = guest.find("arch")
            guest_archs.append(arch_el.get("name"))
            if arch_el.get("name") == arch and arch_el.find("domain[@type='kvm']") is not None:
                kvm = True
        domain_type, reason = _domain_type(host.virt_type, kvm=kvm, nested=nested)
        uefi = False
        with contextlib.suppress(libvirt.libvirtError):
            dom_caps = ET.fromstring(conn.getDomainCapabilities(None, arch, None, domain_type, 0))
            uefi = any(v.text == "efi" for v in dom_caps.findall("os/enum[@name='firmware']/value"))
        info = conn.getInfo()
        free = conn.getFreeMemory()
        pool = ensure_pool(conn, host)
        pool.refresh(0)
        _state, capacity, _allocation, available = pool.info()
        return HostFacts(
            arch=arch,
            guest_archs=sorted(set(guest_archs)),
            domain_type=domain_type,
            domain_type_reason=reason,
            uefi=uefi,
            cpus=info[2],
            memory_bytes=info[1] * 1024 * 1024,
            free_memory_bytes=free,
            pool_capacity=capacity,
            pool_available=available,
        )


def _domain_type(virt_type: str, *, kvm: bool, nested: bool) -> tuple[str, str]:
    if virt_type == "qemu":
        return "qemu", "QEMU emulation chosen for this host"
    if virt_type == "kvm":
        return ("kvm", "KVM chosen for this host") if kvm else ("qemu", "KVM chosen but libvirt offers none")
    if not kvm:
        return "qemu", "libvirt offers no KVM here (no /dev/kvm)"
    if nested:
        return "qemu", "the host is itself a VM: nested KVM is unreliable, QEMU emulation used"
    return "kvm", "KVM offered by libvirt"


# --- volumes -------------------------------------------------------------------------------------------


def _volume(pool, name: str):
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return None


def volume_path(host, name: str) -> str | None:
    with connect(host) as conn:
        volume = _volume(ensure_pool(conn, host), name)
        return volume.path() if volume is not None else None


def upload_volume(
    host,
    *,
    name: str,
    size: int,
    blocks: Iterable[bytes],
    progress: Callable[[int], None] | None = None,
) -> str:
    """Create volume `name` of `size` bytes and stream `blocks` into it (virStorageVolUpload); its path.

    The volume is created raw: the bytes are written as they come and the format is named by whoever
    uses the volume (the overlay's backing format), never probed. A failure deletes the volume.
    """
    with connect(host) as conn:
        pool = ensure_pool(conn, host)
        old = _volume(pool, name)
        if old is not None:
            old.delete(0)
        xml = (
            f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size}</capacity>"
            "<target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>"
        )
        volume = pool.createXML(xml, 0)
        stream = conn.newStream(0)
        sent = 0
        try:
            volume.upload(stream, 0, size, 0)
            for block in blocks:
                view = memoryview(block)
                while view:
                    n = stream.send(view[:STREAM_BLOCK].tobytes())
                    view = view[n:]
                    sent += n
                if progress is not None:
                    progress(sent)
            if sent != size:
                raise HypervisorError(
                    _("The storage gave %(sent)d of %(size)d bytes.") % {"sent": sent, "size": size}
                )
            stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            with contextlib.suppress(libvirt.libvirtError):
                volume.delete(0)
            raise
        return volume.path()


def create_overlay(host, *, name: str, backing_path: str, backing_format: str, capacity: int) -> str:
    """A qcow2 volume whose backing store is the cache entry; its path."""
    with connect(host) as conn:
        pool = ensure_pool(conn, host)
        old = _volume(pool, name)
        if old is not None:
            old.delete(0)
        xml = (
            f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{capacity}</capacity>"
            "<target><format type='qcow2'/></target>"
            f"<backingStore><path>{escape(backing_path)}</path><format type='{escape(backing_format)}'/>"
            "</backingStore></volume>"
        )
        return pool.createXML(xml, 0).path()


def create_empty(host, *, name: str) -> str:
    """An empty raw file in the pool (the serial console's log); its path."""
    with connect(host) as conn:
        pool = ensure_pool(conn, host)
        old = _volume(pool, name)
        if old is not None:
            old.delete(0)
        xml = (
            f"<volume><name>{escape(name)}</name><capacity unit='bytes'>0</capacity>"
            "<target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>"
        )
        return pool.createXML(xml, 0).path()


def delete_volumes(host, names: Iterable[str]) -> None:
    with connect(host) as conn:
        pool = ensure_pool(conn, host)
        for name in names:
            if not name:
                continue
            volume = _volume(pool, name)
            if volume is not None:
                volume.delete(0)


def flatten_volume(host, *, source: str, name: str) -> int:
    """A standalone qcow2 copy of `source` with its backing chain merged in (virStorageVolCreateXMLFrom);
    its size in bytes."""
    with connect(host) as conn:
        pool = ensure_pool(conn, host)
        original = pool.storageVolLookupByName(source)
        old = _volume(pool, name)
        if old is not None:
            old.delete(0)
        capacity = original.info()[1]
        xml = (
            f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{capacity}</capacity>"
            "<target><format type='qcow2'/></target></volume>"
        )
        copy = pool.createXMLFrom(xml, original, 0)
        return copy.info()[2]


def download_volume(host, *, name: str, offset: int = 0, length: int = 0) -> Iterable[bytes]:
    """The bytes of a volume (virStorageVolDownload), from `offset`, `length` bytes (0: to the end)."""
    with connect(host) as conn:
        volume = ensure_pool(conn, host).storageVolLookupByName(name)
        stream = conn.newStream(0)
        volume.download(stream, offset, length, 0)
        try:
            while True:
                data = stream.recv(STREAM_BLOCK)
                if data == -2:
                    continue
                if not data:
                    break
                yield data
            stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise


def volume_size(host, name: str) -> int:
    """The bytes the volume's file holds now (its allocation for a growing log)."""
    with connect(host) as conn:
        volume = ensure_pool(conn, host).storageVolLookupByName(name)
        _type, capacity, allocation = volume.info()
        return max(capacity, 0)


def read_tail(host, *, name: str, nbytes: int) -> bytes:
    """The last `nbytes` of a volume (the serial console's log)."""
    try:
        size = volume_size(host, name)
    except HypervisorError:
        return b""
    if size <= 0:
        return b""
    offset = max(size - nbytes, 0)
    return b"".join(download_volume(host, name=name, offset=offset, length=size - offset))


# --- domains -------------------------------------------------------------------------------------------


@dataclass
class DomainSpec:
    name: str
    domain_type: str
    arch: str
    vcpus: int
    memory_mib: int
    boot_mode: str
    virtio: bool
    disk_path: str
    seed_path: str = ""
    console_path: str = ""
    network: str = ""


def domain_xml(spec: DomainSpec) -> str:
    bus = "virtio" if spec.virtio else "sata"
    firmware = " firmware='efi'" if spec.boot_mode == "uefi" else ""
    machine = "q35" if spec.boot_mode == "uefi" else "pc"
    parts = [
        f"<domain type='{escape(spec.domain_type)}'>",
        f"<name>{escape(spec.name)}</name>",
        f"<memory unit='MiB'>{spec.memory_mib}</memory>",
        f"<vcpu>{spec.vcpus}</vcpu>",
        f"<os{firmware}><type arch='{escape(spec.arch)}' machine='{machine}'>hvm</type>",
        "<boot dev='hd'/>",
    ]
    if spec.boot_mode != "uefi":
        # SeaBIOS writes to the serial console too: "No bootable device." is read from there.
        parts.append("<bios useserial='yes'/>")
    if spec.boot_mode == "uefi":
        parts.append("<firmware><feature enabled='no' name='secure-boot'/></firmware>")
    parts += [
        "</os>",
        "<features><acpi/><apic/></features>",
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>",
        "<devices>",
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{escape(spec.disk_path)}'/><target dev='{'vda' if spec.virtio else 'sda'}' bus='{bus}'/>"
        "</disk>",
    ]
    if spec.seed_path:
        parts.append(
            "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
            f"<source file='{escape(spec.seed_path)}'/><target dev='sdb' bus='sata'/><readonly/></disk>"
        )
    if spec.network:
        model = "virtio" if spec.virtio else "e1000"
        parts.append(
            f"<interface type='network'><source network='{escape(spec.network)}'/><model type='{model}'/></interface>"
        )
    if spec.console_path:
        parts.append(
            f"<serial type='file'><source path='{escape(spec.console_path)}'/><target port='0'/></serial>"
        )
    parts += [
        "<video><model type='vga'/></video>",
        "<memballoon model='none'/>",
        "</devices></domain>",
    ]
    return "".join(parts)


def _domain(conn, name: str):
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def define_and_start(host, spec: DomainSpec, *, start: bool = True) -> None:
    with connect(host) as conn:
        domain = conn.defineXML(domain_xml(spec))
        if start:
            domain.create()


DOMAIN_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "running",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "running",
    libvirt.VIR_DOMAIN_SHUTDOWN: "running",  # shutting down
    libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
    libvirt.VIR_DOMAIN_CRASHED: "error",
}


def domain_states(host, names: Iterable[str]) -> dict[str, str | None]:
    """State of each domain ('running', 'stopped', 'error'), None for a domain libvirt does not know."""
    with connect(host) as conn:
        result = {}
        for name in names:
            domain = _domain(conn, name)
            result[name] = None if domain is None else DOMAIN_STATES.get(domain.state()[0], "error")
        return result


def domain_action(host, name: str, action: str) -> None:
    """start, shutdown (ACPI), destroy (power off); reboot() reboots."""
    with connect(host) as conn:
        domain = _domain(conn, name)
        if domain is None:
            raise HypervisorError(_("%(host)s has no VM %(name)s.") % {"host": host.name, "name": name})
        running = domain.isActive()
        if action == "start" and not running:
            domain.create()
        elif action == "shutdown" and running:
            domain.shutdown()
        elif action == "destroy" and running:
            domain.destroy()


# libvirt delivers domain events only on connections opened after an event loop is registered; the loop
# runs in a daemon thread of the process that asked (an RQ work horse), registered once per process.
_event_loop_pid = None
_event_loop_lock = threading.Lock()


def _ensure_event_loop() -> None:
    global _event_loop_pid
    with _event_loop_lock:
        if _event_loop_pid == os.getpid():
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_pid = os.getpid()


REBOOT_ACPI = "acpi"
REBOOT_RESET = "reset"


def reboot(host, name: str, *, timeout: float) -> str:
    """Reboot through ACPI (virDomainReboot with the power button: libvirt presses it and has QEMU reset
    the guest instead of powering it off when the guest shuts down). A guest that has not restarted after
    `timeout` seconds is reset (virDomainReset). Returns REBOOT_ACPI or REBOOT_RESET: which one happened,
    told by libvirt's reboot event (the guest's reset) arriving before the timeout; the lifecycle event
    "shut down" counts too, for libvirt versions that report the guest's shutdown first."""
    _ensure_event_loop()
    with connect(host) as conn:
        domain = _domain(conn, name)
        if domain is None:
            raise HypervisorError(_("%(host)s has no VM %(name)s.") % {"host": host.name, "name": name})
        if not domain.isActive():
            raise HypervisorError(_("%(name)s is not running.") % {"name": name})
        restarted = threading.Event()

        def on_reboot(_conn, _domain, _opaque) -> None:
            restarted.set()

        def on_lifecycle(_conn, _domain, event, _detail, _opaque) -> None:
            if event == libvirt.VIR_DOMAIN_EVENT_SHUTDOWN:
                restarted.set()

        callbacks = [
            conn.domainEventRegisterAny(domain, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, on_reboot, None),
            conn.domainEventRegisterAny(domain, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None),
        ]
        try:
            try:
                domain.reboot(libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)
            except libvirt.libvirtError:
                logger.info("%s: no ACPI reboot, resetting", name, exc_info=True)
                domain.reset(0)
                return REBOOT_RESET
            if restarted.wait(timeout):
                return REBOOT_ACPI
            domain.reset(0)
            return REBOOT_RESET
        finally:
            for callback in callbacks:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.domainEventDeregisterAny(callback)


def undefine(host, name: str) -> None:
    """Power off and remove the domain (with its UEFI variables), if it exists."""
    with connect(host) as conn:
        domain = _domain(conn, name)
        if domain is None:
            return
        if domain.isActive():
            domain.destroy()
        flags = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        try:
            domain.undefineFlags(flags)
        except libvirt.libvirtError:
            domain.undefine()


def screenshot(host, name: str) -> bytes | None:
    """The guest's screen as PNG (virDomainScreenshot, converted with Pillow), None when not running."""
    import io

    from PIL import Image as PILImage

    with connect(host) as conn:
        domain = _domain(conn, name)
        if domain is None or not domain.isActive():
            return None
        stream = conn.newStream(0)
        domain.screenshot(stream, 0, 0)
        chunks = []
        while True:
            data = stream.recv(STREAM_BLOCK)
            if data == -2:
                continue
            if not data:
                break
            chunks.append(data)
        stream.finish()
    raw = b"".join(chunks)
    out = io.BytesIO()
    PILImage.open(io.BytesIO(raw)).save(out, format="PNG")
    return out.getvalue()
