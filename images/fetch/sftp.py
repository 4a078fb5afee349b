"""sftp with paramiko: user:password, or user@host with the administrator's key; stat announces the size,
a dropped connection resumes by reading from the offset reached.

Host keys are checked against IMPORT_SFTP_KNOWN_HOSTS when it is set; otherwise the key a server shows
the first time is trusted and must be shown again every later time (images.services.hostkeys).
"""

from __future__ import annotations

import logging
import stat

import paramiko

from imageconsole.core.words import gettext as _

from . import guard, urls
from .engine import BLOCK_SIZE, Transfer
from .errors import FetchError, URLRefused
from .errors import Transient as _Transient
from .ftp import shutdown
from .policy import FetchPolicy

logger = logging.getLogger("images.fetch")

# Read ahead this much with pipelined requests: fast on high-latency links, constant memory.
WINDOW = 8 * BLOCK_SIZE


def load_key(policy: FetchPolicy) -> paramiko.PKey:
    if not policy.sftp_key_file:
        raise URLRefused(
            _(
                "sftp://user@host/... logs in with a key, and no key is configured: give a password in the URL, or "
                "ask an administrator to set IMPORT_SFTP_KEY_FILE."
            ),
            rule="credentials",
        )
    passphrase = policy.sftp_key_passphrase or None
    try:
        return paramiko.PKey.from_path(policy.sftp_key_file, passphrase)
    except (OSError, paramiko.SSHException, ValueError) as error:
        raise FetchError(
            _(
                "The sftp key configured by the administrator (IMPORT_SFTP_KEY_FILE) cannot be read: %(reason)s"
            )
            % {"reason": error}
        ) from error


def fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class SftpDriver:
    def __init__(self, url: urls.ImportURL, *, password, policy: FetchPolicy):
        self.url = url
        self.policy = policy
        self._password = password
        self._addresses = None

    @property
    def current_url(self) -> str:
        return self.url.redacted

    def _connect(self):
        if self._addresses is None:
            self._addresses = guard.resolve(self.url, self.policy)
        last_error = None
        for ip in self._addresses:
            try:
                return guard.connect(ip, self.url.port, timeout=self.policy.connect_timeout)
            except OSError as error:
                last_error = error
        raise _Transient(
            _("could not connect to %(host)s (%(reason)s)") % {"host": self.url.host, "reason": last_error}
        )

    def _verify_host_key(self, transport: paramiko.Transport) -> None:
        key = transport.get_remote_server_key()
        if not self.policy.sftp_known_hosts:
            if self.policy.sftp_host_key_check is not None:
                self.policy.sftp_host_key_check(self.url.host, self.url.port, key)
                return
            logger.warning("sftp host key of %s not verified: %s", self.url.host, fingerprint(key))
            return
        try:
            known_hosts = paramiko.HostKeys(self.policy.sftp_known_hosts)
        except OSError as error:
            raise FetchError(
                _("IMPORT_SFTP_KNOWN_HOSTS cannot be read: %(reason)s") % {"reason": error}
            ) from error
        name = self.url.netloc_host if self.url.port == 22 else f"[{self.url.host}]:{self.url.port}"
        entries = known_hosts.lookup(name) or {}
        known = entries.get(key.get_name())
        if known is None:
            raise FetchError(
                _(
                    "The sftp server %(host)s is not in IMPORT_SFTP_KNOWN_HOSTS (its key is %(fingerprint)s); an "
                    "administrator must add it first."
                )
                % {"host": name, "fingerprint": fingerprint(key)}
            )
        if known != key:
            raise FetchError(
                _(
                    "The host key of the sftp server %(host)s does not match IMPORT_SFTP_KNOWN_HOSTS (it is now "
                    "%(fingerprint)s): the import was stopped."
                )
                % {"host": name, "fingerprint": fingerprint(key)}
            )

    def _authenticate(self, transport: paramiko.Transport) -> None:
        try:
            if self.url.has_password:
                transport.auth_password(self.url.username, self._password())
            else:
                transport.auth_publickey(self.url.username, load_key(self.policy))
        except paramiko.AuthenticationException:
            raise FetchError(
                _("The sftp server refused the login of %(user)s.") % {"user": self.url.username}
            ) from None

    def attempt(self, transfer: Transfer) -> None:
        sock = self._connect()
        transfer.set_abort(lambda: shutdown(sock))
        transport = paramiko.Transport(sock)
        timeout = self.policy.connect_timeout
        transport.banner_timeout = transport.auth_timeout = transport.handshake_timeout = timeout
        try:
            transport.start_client(timeout=timeout)
            self._verify_host_key(transport)
            self._authenticate(transport)
            client = paramiko.SFTPClient.from_transport(transport)
            client.get_channel().settimeout(self.policy.stall_timeout)
            try:
                attributes = client.stat(self.url.path)
            except FileNotFoundError:
                raise FetchError(_("There is no file at %(url)s.") % {"url": self.url.redacted}) from None
            except PermissionError:
                raise FetchError(
                    _("The sftp server does not let %(user)s read %(url)s.")
                    % {"user": self.url.username, "url": self.url.redacted}
                ) from None
            if stat.S_ISDIR(attributes.st_mode or 0):
                raise FetchError(_("%(url)s is a directory, not a file.") % {"url": self.url.redacted})
            size = attributes.st_size
            transfer.announce(size)
            with client.open(self.url.path, "rb") as remote:
                offset = transfer.offset
                while offset < size:
                    end = min(size, offset + WINDOW)
                    blocks = [
                        (start, min(BLOCK_SIZE, end - start)) for start in range(offset, end, BLOCK_SIZE)
                    ]
                    for data in remote.readv(blocks):
                        if not data:
                            raise _Transient(_("the file ended early"))
                        transfer.deliver(data)
                        offset += len(data)
        except (paramiko.SSHException, EOFError, OSError) as error:
            if isinstance(error, TimeoutError):
                reason = _("no data arrived for %(seconds)d seconds") % {"seconds": self.policy.stall_timeout}
            else:
                reason = _("the connection dropped")
            raise _Transient(reason) from error
        finally:
            transfer.set_abort(None)
            transport.close()
            sock.close()
