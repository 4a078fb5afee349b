"""The SSRF guard: which schemes, ports and addresses a fetch may reach.

A host is resolved once, every address it resolves to is checked, and the connection goes to an
address that was checked, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot lead anywhere else. Redirects go through the same checks.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from django.utils.translation import pgettext_lazy

from imageconsole.core.words import gettext as _

from .errors import FetchError, URLRefused
from .policy import FetchPolicy
from .urls import ImportURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# A host whose last label is a number is an IPv4 address however it is spelled (2130706433, 127.1,
# 0x7f.1, 0177.0.0.1), as browsers read it: parsed the way the C library parses it, never sent to DNS.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# The rule's name in a refusal ("rule: loopback addresses"); a term an operator can look up.
CATEGORY_LABELS = {
    "unspecified": pgettext_lazy("address rule", "unspecified"),
    "loopback": pgettext_lazy("address rule", "loopback"),
    "link-local": pgettext_lazy("address rule", "link-local"),
    "multicast": pgettext_lazy("address rule", "multicast"),
    "private": pgettext_lazy("address rule", "private"),
    "reserved": pgettext_lazy("address rule", "reserved"),
    "not-global": pgettext_lazy("address rule", "not globally routable"),
}


def _category_label(category: str) -> str:
    labels = {
        "unspecified": _("an unspecified address"),
        "loopback": _("a loopback address"),
        "link-local": _("a link-local address (this includes cloud metadata services)"),
        "multicast": _("a multicast address"),
        "private": _("a private-network address"),
        "reserved": _("a reserved address"),
        "not-global": _("an address that is not publicly routable"),
    }
    return labels[category]


def _category(ip: IPAddress) -> str:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not-global"
    return ""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[ipaddress.IPv4Address, str]]:
    """IPv4 addresses an IPv6 address leads to (mapped, 6to4, Teredo, NAT64), each with its form."""
    found = []
    if ip.ipv4_mapped:
        found.append((ip.ipv4_mapped, "IPv4-mapped"))
    if ip.sixtofour:
        found.append((ip.sixtofour, "6to4"))
    if ip.teredo:
        found.append((ip.teredo[1], "Teredo"))
    if ip in _NAT64:
        found.append((ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"))
    return found


def _refusal(ip: IPAddress, policy: FetchPolicy) -> tuple[str, IPAddress, str]:
    """(rule, the address it applies to, the IPv6 form that led there or "") or ("", ip, "")."""
    candidates = [(ip, "")]
    if isinstance(ip, ipaddress.IPv6Address):
        # The IPv4 address an IPv6 form leads to decides (::ffff:127.0.0.1 is loopback, not "reserved").
        candidates = _embedded_ipv4(ip) + candidates
    for candidate, _form in candidates:
        if any(candidate.version == net.version and candidate in net for net in policy.allowed_networks):
            return "", ip, ""
    for candidate, form in candidates:
        category = _category(candidate)
        if category:
            return category, candidate, form
    return "", ip, ""


def address_category(ip: IPAddress, policy: FetchPolicy) -> str:
    """The rule that refuses `ip` ("loopback", "private", ...), or "" when it may be reached."""
    return _refusal(ip, policy)[0]


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself (any IPv4 spelling, or IPv6), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.rstrip(".").rsplit(".", 1)[-1]):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            raise URLRefused(
                _("“%(host)s” is not a valid address.") % {"host": host}, rule="syntax"
            ) from None
    return None


def check_scheme(url: ImportURL, policy: FetchPolicy) -> None:
    if url.scheme not in policy.allowed_schemes:
        raise URLRefused(
            _(
                "Imports from %(scheme)s URLs are turned off on this console. Use one of: %(schemes)s, or "
                "ask your administrator."
            )
            % {"scheme": url.scheme, "schemes": ", ".join(sorted(policy.allowed_schemes))},
            rule="scheme",
            setting="IMPORT_ALLOWED_SCHEMES",
        )


def check_port(url: ImportURL, policy: FetchPolicy) -> None:
    if url.scheme != "file" and not policy.port_allowed(url.port):
        raise URLRefused(
            _(
                "Port %(port)d is not open to imports. Put the image on a server that answers on one of "
                "these ports: %(ports)s, or ask your administrator to allow port %(port)d."
            )
            % {"port": url.port, "ports": policy.describe_ports()},
            rule="port",
            setting="IMPORT_ALLOWED_PORTS",
        )


def check_address(ip: IPAddress, *, host: str, policy: FetchPolicy) -> None:
    category, reached, form = _refusal(ip, policy)
    if category:
        kind = _category_label(category)
        if form:
            # 2002:7f00:1:: is not itself loopback: say which IPv4 address it leads to, and how.
            kind = _("the %(form)s form of %(inner)s, %(kind)s") % {
                "form": form,
                "inner": reached,
                "kind": kind,
            }
        if str(ip) == host:
            subject = _("%(address)s is %(kind)s") % {"address": ip, "kind": kind}
        else:
            subject = _("“%(host)s” leads to %(address)s, %(kind)s") % {
                "host": host,
                "address": ip,
                "kind": kind,
            }
        raise URLRefused(
            _(
                "%(subject)s: imports from it are refused (rule: %(rule)s addresses). Use a public "
                "address, or ask your administrator to allow this internal mirror."
            )
            % {"subject": subject, "rule": CATEGORY_LABELS[category]},
            rule="address",
            category=category,
            setting="IMPORT_ALLOWED_NETWORKS",
        )


def resolve(url: ImportURL, policy: FetchPolicy) -> list[IPAddress]:
    """Every address of the URL's host, each checked; refuses the host if any address is refused."""
    literal = literal_address(url.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = policy.resolver(url.host, url.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise FetchError(
                _("The host name “%(host)s” could not be resolved (%(reason)s).")
                % {"host": url.host, "reason": error}
            ) from error
        addresses = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].partition("%")[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise FetchError(_("The host name “%(host)s” has no address.") % {"host": url.host})
    for ip in addresses:
        check_address(ip, host=url.host, policy=policy)
    return addresses


def check_url(url: ImportURL, policy: FetchPolicy) -> None:
    """The checks that need no DNS: scheme, port, and the address of a host written as an address."""
    check_scheme(url, policy)
    check_port(url, policy)
    if url.scheme != "file":
        literal = literal_address(url.host)
        if literal is not None:
            check_address(literal, host=url.host, policy=policy)


def connect(ip: IPAddress, port: int, *, timeout: float) -> socket.socket:
    """A TCP connection to an address the guard checked (never to a name)."""
    return socket.create_connection((str(ip), port), timeout=timeout)
