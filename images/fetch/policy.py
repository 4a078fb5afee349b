"""The rules and limits of one fetch, read from Django settings when the fetch starts."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = ("21", "22", "80", "443", "8000", "8080", "8443")


def parse_ports(values: Sequence[str | int]) -> tuple[range, ...] | None:
    """`["80", "443", "8000-8099"]` as ranges; `None` (any port) when the list holds ``*``."""
    ranges = []
    for value in values:
        text = str(value).strip()
        if text == "*":
            return None
        low, _, high = text.partition("-")
        try:
            start, end = int(low), int(high or low)
        except ValueError:
            raise ImproperlyConfigured(
                f"IMPORT_ALLOWED_PORTS: {text!r} is not a port or a range like 8000-8099"
            ) from None
        if not 1 <= start <= end <= 65535:
            raise ImproperlyConfigured(f"IMPORT_ALLOWED_PORTS: {text!r} is outside 1-65535")
        ranges.append(range(start, end + 1))
    return tuple(ranges)


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"IMPORT_ALLOWED_NETWORKS: {value!r} is not an address or a network like 10.1.0.0/16"
            ) from None
    return tuple(networks)


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    allowed_schemes: frozenset[str] = frozenset({"http", "https", "ftp", "sftp", "file"})
    allowed_ports: tuple[range, ...] | None = parse_ports(DEFAULT_PORTS)
    allowed_networks: tuple[IPNetwork, ...] = ()
    file_roots: tuple[Path, ...] = ()
    connect_timeout: float = 15.0
    stall_timeout: float = 60.0
    retries: int = 5
    retry_delay: float = 2.0
    max_redirects: int = 5
    ca_bundle: str = ""
    sftp_key_file: str = ""
    sftp_key_passphrase: str = ""
    sftp_known_hosts: str = ""
    # Without a known_hosts file: called with (host, port, key) before logging in; raises FetchError
    # when the key is not the one trusted for that server. None: keys are not checked. The import
    # service passes images.services.hostkeys.trust_on_first_use (fetch imports no service).
    sftp_host_key_check: Callable | None = None
    # Tests replace this to give a made-up name an address without asking a DNS server.
    resolver: Callable = socket.getaddrinfo

    @classmethod
    def from_settings(cls, **overrides) -> FetchPolicy:
        def get(name, default):
            return getattr(settings, name, default)

        values = {
            "allowed_schemes": frozenset(
                s.strip().lower() for s in get("IMPORT_ALLOWED_SCHEMES", cls.allowed_schemes)
            ),
            "allowed_ports": parse_ports(get("IMPORT_ALLOWED_PORTS", DEFAULT_PORTS)),
            "allowed_networks": parse_networks(get("IMPORT_ALLOWED_NETWORKS", [])),
            "file_roots": tuple(
                Path(root).resolve() for root in get("IMPORT_FILE_ROOTS", []) if str(root).strip()
            ),
            "connect_timeout": float(get("IMPORT_CONNECT_TIMEOUT", cls.connect_timeout)),
            "stall_timeout": float(get("IMPORT_STALL_TIMEOUT", cls.stall_timeout)),
            "retries": int(get("IMPORT_FETCH_RETRIES", cls.retries)),
            "retry_delay": float(get("IMPORT_RETRY_DELAY", cls.retry_delay)),
            "ca_bundle": get("IMPORT_CA_BUNDLE", ""),
            "sftp_key_file": get("IMPORT_SFTP_KEY_FILE", ""),
            "sftp_key_passphrase": get("IMPORT_SFTP_KEY_PASSPHRASE", ""),
            "sftp_known_hosts": get("IMPORT_SFTP_KNOWN_HOSTS", ""),
        }
        values.update(overrides)
        return cls(**values)

    def port_allowed(self, port: int) -> bool:
        return self.allowed_ports is None or any(port in allowed for allowed in self.allowed_ports)

    def describe_ports(self) -> str:
        if self.allowed_ports is None:
            return "*"
        return ", ".join(
            str(r.start) if len(r) == 1 else f"{r.start}-{r.stop - 1}" for r in self.allowed_ports
        )
