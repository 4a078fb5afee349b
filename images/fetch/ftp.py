"""ftp with ftplib: anonymous or user:password, binary mode, SIZE announced, REST to resume.

The control connection goes to the address the guard checked; the data connection goes to that same
address whatever the server's PASV answer names (ftplib ignores the address in a 227 reply), so a
server cannot point the worker at another host.
"""

from __future__ import annotations

import ftplib
import socket

from imageconsole.core.words import gettext as _

from . import guard, urls
from .engine import BLOCK_SIZE, Transfer
from .errors import FetchError
from .errors import Transient as _Transient
from .policy import FetchPolicy


def shutdown(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def receive_blocks(sock: socket.socket, transfer: Transfer) -> None:
    """Hand what `sock` sends to the transfer in blocks of BLOCK_SIZE until the server closes it."""
    while True:
        block = bytearray(BLOCK_SIZE)
        view = memoryview(block)
        filled = 0
        while filled < BLOCK_SIZE:
            received = sock.recv_into(view[filled:])
            if not received:
                break
            filled += received
        view.release()
        if filled:
            del block[filled:]
            transfer.deliver(block)
        if filled < BLOCK_SIZE:
            return


class FtpDriver:
    def __init__(self, url: urls.ImportURL, *, password, policy: FetchPolicy):
        self.url = url
        self.policy = policy
        self._password = password
        self._addresses = None

    @property
    def current_url(self) -> str:
        return self.url.redacted

    def _connect(self) -> ftplib.FTP:
        if self._addresses is None:
            self._addresses = guard.resolve(self.url, self.policy)
        last_error = None
        for ip in self._addresses:
            ftp = ftplib.FTP(timeout=self.policy.connect_timeout)
            try:
                ftp.connect(str(ip), self.url.port)
                return ftp
            except OSError as error:
                ftp.close()
                last_error = error
        raise _Transient(
            _("could not connect to %(host)s (%(reason)s)") % {"host": self.url.host, "reason": last_error}
        )

    def _login(self, ftp: ftplib.FTP) -> None:
        try:
            if self.url.username:
                ftp.login(self.url.username, self._password() if self.url.has_password else "")
            else:
                ftp.login()
        except ftplib.error_perm as error:
            raise FetchError(
                _("The FTP server refused the login of %(user)s (%(reply)s).")
                % {"user": self.url.username or "anonymous", "reply": _reply(error)}
            ) from error

    def attempt(self, transfer: Transfer) -> None:
        ftp = self._connect()
        conn = None
        transfer.set_abort(lambda: shutdown(ftp.sock))
        try:
            ftp.sock.settimeout(self.policy.stall_timeout)
            ftp.timeout = self.policy.stall_timeout  # ftplib uses it for the data connection
            self._login(ftp)
            ftp.voidcmd("TYPE I")
            remote = self.url.path.lstrip("/")
            try:
                size = ftp.size(remote)
            except ftplib.error_perm:
                size = None
            transfer.announce(size)
            offset = transfer.offset
            try:
                conn = ftp.transfercmd(f"RETR {remote}", rest=offset or None)
            except ftplib.error_perm as error:
                if not offset or str(error)[:3] == "550":
                    raise FetchError(
                        _("The FTP server could not send %(url)s (%(reply)s).")
                        % {"url": self.url.redacted, "reply": _reply(error)}
                    ) from error
                transfer.restart()  # no REST: start again from zero
                conn = ftp.transfercmd(f"RETR {remote}")
            transfer.set_abort(lambda: (shutdown(conn), shutdown(ftp.sock)))
            conn.settimeout(self.policy.stall_timeout)
            receive_blocks(conn, transfer)
            conn.close()
            conn = None
            ftp.voidresp()
        except ftplib.error_temp as error:
            raise _Transient(_("the FTP server answered %(reply)s") % {"reply": _reply(error)}) from error
        except ftplib.error_perm as error:
            raise FetchError(
                _("The FTP server refused the transfer (%(reply)s).") % {"reply": _reply(error)}
            ) from error
        except (OSError, EOFError, ftplib.error_reply, ftplib.error_proto) as error:
            raise _Transient(_connection_reason(error, self.policy.stall_timeout)) from error
        finally:
            transfer.set_abort(None)
            if conn is not None:
                conn.close()
            ftp.close()


def _reply(error: BaseException) -> str:
    return str(error).strip()[:200]


def _connection_reason(error: BaseException, stall_timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return _("no data arrived for %(seconds)d seconds") % {"seconds": stall_timeout}
    return _("the connection dropped")
