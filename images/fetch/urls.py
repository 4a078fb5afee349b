"""The URL syntaxes an image can be imported from (seed 002), and how their passwords are kept.

    http://host[:port]/path/file            https://host[:port]/path/file
    ftp://hostname[:port]/path/file         ftp://user:password@hostname[:port]/path/file
    sftp://user:password@hostname[:port]/path/file
    sftp://user@hostname[:port]/path/file   (the administrator's key, IMPORT_SFTP_KEY_FILE)
    file:///path/file                       (administrators only, under IMPORT_FILE_ROOTS)

A password never travels further than `split_secret`: the URL is kept with the password replaced by
``***`` and the password is kept encrypted with `imageconsole.crypto` until the fetch ends.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import unquote, urlsplit

from imageconsole.core import crypto
from imageconsole.core.words import gettext as _

from .errors import URLRefused

REDACTED = "***"
SCHEMES = ("http", "https", "ftp", "sftp", "file")
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "sftp": 22}
MAX_URL_LENGTH = 2048

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
# Any userinfo with a password, even in a string that is not a valid URL.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@:]*:)(?P<password>[^/?#]*)(?=@)")


@dataclasses.dataclass(frozen=True)
class ImportURL:
    scheme: str
    host: str  # lower case, IPv6 without brackets, "" for file
    port: int  # the explicit port or the scheme's default; 0 for file
    path: str  # percent-decoded
    username: str  # percent-decoded, "" when none
    has_password: bool
    redacted: str  # the URL with the password replaced by ***: the only form shown, stored or logged
    request_target: str = ""  # http(s): the path and query exactly as given

    @property
    def netloc_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def host_header(self) -> str:
        if self.port == DEFAULT_PORTS.get(self.scheme):
            return self.netloc_host
        return f"{self.netloc_host}:{self.port}"

    def __str__(self) -> str:
        return self.redacted


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***; safe on any string."""
    return _USERINFO_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


def _refuse(message: str) -> URLRefused:
    return URLRefused(message, rule="syntax")


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _check_host(host: str, netloc: str) -> str:
    if not host:
        raise _refuse(_("The URL has no host name."))
    if "[" in netloc:
        import ipaddress

        if "%" in host:
            raise _refuse(_("IPv6 zone identifiers are not allowed in an import URL."))
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _refuse(_("“%(host)s” is not a valid IPv6 address.") % {"host": host}) from None
        return host.lower()
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _refuse(_("“%(host)s” is not a valid host name.") % {"host": host}) from None
    if not _HOSTNAME.match(ascii_host) or len(ascii_host) > 253:
        raise _refuse(_("“%(host)s” is not a valid host name.") % {"host": host})
    return ascii_host.rstrip(".")


def parse(url: str) -> tuple[ImportURL, str | None]:
    """Parse an import URL; returns it and its password in clear (None when it has none).

    Checks the syntax only; `validate` and the fetch add the settings' rules and the address checks.
    """
    url = (url or "").strip()
    if not url:
        raise _refuse(_("Enter the URL of the image file."))
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(_("The URL is longer than %(max)d characters.") % {"max": MAX_URL_LENGTH})
    if _has_control(url) or " " in url or "\\" in url:
        raise _refuse(
            _("The URL contains spaces, backslashes or control characters; encode them (a space is %20).")
        )
    scheme = url.partition(":")[0].lower()
    if scheme not in SCHEMES:
        raise URLRefused(
            _("“%(scheme)s:” URLs cannot be imported; use http, https, ftp, sftp or file.")
            % {"scheme": scheme[:20] or "?"},
            rule="scheme",
        )
    parts = urlsplit(url)
    if parts.fragment:
        url = url.partition("#")[0]
    path = unquote(parts.path)
    if _has_control(path):
        raise _refuse(_("The URL's path contains encoded control characters."))

    if scheme == "file":
        if not url.lower().startswith(("file:///", "file://localhost/")):
            raise _refuse(_("A file URL names a local absolute path: file:///path/file."))
        if parts.query:
            raise _refuse(_("A file URL cannot have a query (the part after “?”)."))
        if not path.startswith("/") or path.endswith("/"):
            raise _refuse(_("A file URL names a file by its absolute path: file:///path/file."))
        return ImportURL("file", "", 0, path, "", False, f"file://{parts.path}"), None

    try:
        explicit_port = parts.port
    except ValueError:
        raise URLRefused(_("The port of the URL is not a number from 1 to 65535."), rule="port") from None
    if explicit_port == 0:
        raise URLRefused(_("The port of the URL is not a number from 1 to 65535."), rule="port")
    netloc = parts.netloc
    userinfo, _at, hostport = netloc.rpartition("@")
    host = _check_host(parts.hostname or "", hostport)
    raw_user, has_colon, raw_password = userinfo.partition(":")
    username = unquote(raw_user)
    password = unquote(raw_password) if has_colon else None
    if _has_control(username) or (password is not None and _has_control(password)):
        raise _refuse(_("The user name or password contains control characters."))

    if scheme in ("http", "https"):
        if not path or path.endswith("/") and not parts.query:
            raise _refuse(
                _("The URL must name a file: %(scheme)s://host[:port]/path/file.") % {"scheme": scheme}
            )
        if userinfo and password is None:
            raise URLRefused(_("An http URL with a user name needs a password too."), rule="credentials")
    else:
        if parts.query:
            raise _refuse(
                _("An %(scheme)s URL cannot have a query (the part after “?”).") % {"scheme": scheme}
            )
        if not path.strip("/") or path.endswith("/"):
            raise _refuse(
                _("The URL must name a file: %(scheme)s://host[:port]/path/file.") % {"scheme": scheme}
            )
    if scheme == "sftp" and not username:
        raise URLRefused(
            _(
                "An sftp URL needs a user: sftp://user:password@host/path/file, or sftp://user@host/path/file "
                "with the key the administrator configured."
            ),
            rule="credentials",
        )

    shown_userinfo = ""
    if userinfo:
        shown_password = "" if password is None else f":{REDACTED}" if password else ":"
        shown_userinfo = f"{raw_user}{shown_password}@"
    port_part = f":{explicit_port}" if explicit_port else ""
    netloc_host = f"[{host}]" if ":" in host else host
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    redacted = f"{scheme}://{shown_userinfo}{netloc_host}{port_part}{target}"
    parsed = ImportURL(
        scheme=scheme,
        host=host,
        port=explicit_port or DEFAULT_PORTS[scheme],
        path=path,
        username=username,
        has_password=password is not None,
        redacted=redacted,
        request_target=target if scheme in ("http", "https") else "",
    )
    return parsed, password


def split_secret(url: str) -> tuple[str, str]:
    """(the URL with its password redacted, the password encrypted, or "" when there is none).

    Store the first, keep the second until the fetch ends, then wipe it.
    """
    parsed, password = parse(url)
    if not password:
        return parsed.redacted, ""
    return parsed.redacted, crypto.encrypt(password)
