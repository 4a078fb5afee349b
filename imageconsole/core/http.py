"""The client's address of a request, the same for login throttling (django-axes) and the operation log.

Without a proxy it is REMOTE_ADDR. Behind proxies each proxy appends the address it saw to
X-Forwarded-For, so only the entries our own proxies added can be believed: everything left of them is
whatever the client chose to send. TRUSTED_PROXIES says which entries those are: a count (the client is
the entry the outermost of that many proxies appended), or a list of the proxies' addresses or networks
(walking from the right, the first address that is not one of them).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


def _address(text: str) -> str | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]):
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, networks) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in networks)


def client_ip(request) -> str | None:
    """The address of the client that sent `request` (None without a request)."""
    if request is None:
        return None
    remote = _address(request.META.get("REMOTE_ADDR", "") or "")
    trusted = getattr(settings, "TRUSTED_PROXIES", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if not trusted or not forwarded or remote is None:
        return remote
    # The hops as our proxies saw them, nearest last: REMOTE_ADDR is the nearest proxy itself.
    hops = [_address(entry) for entry in forwarded.split(",")]
    if isinstance(trusted, int):
        # Each of `trusted` proxies appended one entry; fewer entries: the chain was shorter.
        chosen = hops[max(len(hops) - trusted, 0)]
        return chosen or remote
    networks = _networks(tuple(trusted))
    if not _trusted(remote, networks):
        return remote  # not sent through one of our proxies: its X-Forwarded-For means nothing
    for hop in reversed(hops):
        if hop is None:
            return remote
        if not _trusted(hop, networks):
            return hop
    return hops[0] or remote
