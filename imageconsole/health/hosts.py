"""The libvirt hosts of the compute app, once it has a ComputeHost model."""

from __future__ import annotations

import threading

from django.apps import apps
from django.utils.translation import gettext as _

from .base import Check, Status

# The compute app is built in parallel with this module: it is looked up at run time, and its URI field
# is found among the names a libvirt host's connection URI goes by.
URI_FIELDS = ("uri", "libvirt_uri", "connection_uri")


def libvirt_checks() -> list[Check]:
    try:
        model = apps.get_model("compute", "ComputeHost")
    except LookupError:
        return []  # no compute hosts in this version of the console
    checks = []
    for host in model.objects.all():
        uri = next((getattr(host, field) for field in URI_FIELDS if getattr(host, field, "")), "")
        if uri:
            checks.append(libvirt_host_check(str(host), uri))
        else:
            # An empty URI would make libvirt pick a default hypervisor: never check the wrong one.
            checks.append(
                Check(_("Libvirt hosts"), str(host), Status.WARNING, _("No libvirt URI: not checked."))
            )
    return checks


def libvirt_host_check(name: str, uri: str, *, timeout: float = 10.0) -> Check:
    area = _("Libvirt hosts")
    try:
        import libvirt
    except ImportError:
        return Check(area, name, Status.PROBLEM, _("libvirt-python is not installed here."))
    # Errors are reported in the check, not printed on stderr by libvirt's default handler.
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    result: dict = {}

    def connect():
        try:
            connection = libvirt.openReadOnly(uri)
            try:
                result["version"] = connection.getLibVersion()
                result["hostname"] = connection.getHostname()
            finally:
                connection.close()
        except libvirt.libvirtError as error:
            result["error"] = error.get_error_message() or str(error)

    thread = threading.Thread(target=connect, daemon=True, name=f"libvirt-check-{name}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Check(
            area,
            name,
            Status.PROBLEM,
            _("%(uri)s did not answer within %(seconds)d s.") % {"uri": uri, "seconds": timeout},
        )
    if "error" in result:
        return Check(
            area,
            name,
            Status.PROBLEM,
            _("Cannot reach %(uri)s: %(reason)s") % {"uri": uri, "reason": result["error"]},
        )
    version = result["version"]
    return Check(
        area,
        name,
        Status.OK,
        _("%(uri)s answers: %(host)s, libvirt %(version)s.")
        % {
            "uri": uri,
            "host": result["hostname"],
            "version": f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}",
        },
    )
