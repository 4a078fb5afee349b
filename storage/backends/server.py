"""Standalone image storage on a server of its own, reached over SSH ("standalone (server)", seed 003).

The same chunk store as a local standalone storage (see standalone.py: `chunks/ab/<sha256>`, manifests,
holes, journals, exports, tmp/), kept on the server under its mount path and written and read over SFTP:
one SSH connection per storage and process, one SFTP channel per concurrent transfer (the storage's
upload and download concurrency), each chunk a pipelined sequential stream. Files are written under
temporary names and renamed into place; a chunk is published with the SFTP rename, which on OpenSSH is a
hard link that never replaces an existing file, so two writers of one chunk cannot replace each other's
file and a server that dies mid-write leaves only temporary files (removed by data cleanup).

The data-cleanup lock is flock(2) on `.gc.lock` on the server, taken by a small shell on an SSH channel
(`flock` from util-linux): writers hold it shared while they claim a chunk, cleanup exclusively. SFTP
gives modification times in whole seconds and no inode numbers, so a claim moves a chunk's mtime at least
one second past what it was: an aborting writer then sees the chunk was claimed and leaves it.

The connection authenticates with the storage's own ed25519 key (installed with the password once, when
the storage is added or reconnected after Update Password), after checking the server shows the host key
recorded when it was added.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import os
import posixpath
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from imageconsole.core.words import os_reason

from .base import (
    Cancelled,
    CleanupResult,
    ReplicaNotFound,
    StorageError,
    StorageFull,
    Throttled,
    Usage,
    _cancelled_message,
    disk_full_message,
)
from .standalone import (
    _FORBIDDEN_ROOTS,
    CHUNK_SIZE,
    MANIFEST_FORMAT,
    TMP_MIN_AGE_SECONDS,
    ChunkWriter,
    StandaloneBackend,
    check_key,
    check_mount_path,
    nonzero_runs,
)

CONNECT_TIMEOUT = 10
# A new channel on a connection that is up: the server answered already, and a gone one fails at once
# (the transport closes); a busy one may take longer to start a session than to accept a connection
# (over 10 s was seen on a loaded 2-core machine running the test suite beside its storage servers).
CHANNEL_OPEN_TIMEOUT = 60
CHANNEL_TIMEOUT = 120
KEY_COMMENT = "imageconsole-storage"

logger = logging.getLogger("storage.server")


class Unreachable(StorageError):
    """The server cannot be reached, refused the key, or went away during an operation."""


class KeyRefused(Unreachable):
    """The server no longer accepts the console's key (the password can install it again)."""


class DataNetworkUnreachable(Unreachable):
    """The storage has a data network, and its server cannot be reached at its address there."""


def host_key_text(key) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def fingerprint(key) -> str:
    import base64

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_key_fingerprint(text: str) -> str:
    """The SHA256 fingerprint of a recorded host key ("type base64"), as ssh-keygen -l shows it."""
    import base64

    try:
        blob = base64.b64decode(text.split()[1])
    except (IndexError, ValueError):
        return ""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def generate_key(comment: str) -> tuple[str, str]:
    """A new ed25519 key pair: (private key in OpenSSH format, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"


def _load_key(private: str):
    import paramiko

    return paramiko.Ed25519Key.from_private_key(io.StringIO(private))


def open_transport(
    storage, *, address: str | None = None, password: str | None = None, pin_host_key: bool = False
):
    """An authenticated paramiko Transport to the storage's server, at `address` (one of the server's
    own, e.g. in its data network) or the address it was added by.

    With `password`, logs in with it (adding the storage, or reconnecting after Update Password);
    otherwise with the storage's key. The server's host key must be the recorded one whatever the
    address; with `pin_host_key` and none recorded yet, the key shown is recorded on the storage (not saved)."""
    import paramiko

    name = storage.name
    address = address or storage.host
    where = f"{address}:{storage.ssh_port}"
    try:
        sock = socket.create_connection((address, storage.ssh_port), timeout=CONNECT_TIMEOUT)
    except OSError as error:
        raise Unreachable(
            _("Cannot reach the storage server %(where)s of “%(name)s”: %(reason)s.")
            % {"where": where, "name": name, "reason": os_reason(error)}
        ) from error
    transport = paramiko.Transport(sock)
    # AES-GCM first: one pass per packet in OpenSSL, where CTR adds an HMAC over every packet.
    options = transport.get_security_options()
    fast = [name for name in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com") if name in options.ciphers]
    options.ciphers = tuple(fast + [name for name in options.ciphers if name not in fast])
    try:
        transport.start_client(timeout=CONNECT_TIMEOUT)
        shown = transport.get_remote_server_key()
        if not storage.ssh_host_key and pin_host_key:
            storage.ssh_host_key = host_key_text(shown)
        if host_key_text(shown) != storage.ssh_host_key:
            raise Unreachable(
                _(
                    "The storage server %(where)s shows a different host key (%(fingerprint)s) from the one it "
                    "showed when it was added, so the console did not log in. If the server was really "
                    "reinstalled, delete the storage and add it again."
                )
                % {"where": where, "fingerprint": fingerprint(shown)}
            )
        if password is not None:
            transport.auth_password(storage.ssh_username, password)
        else:
            private = storage.get_ssh_private_key()
            if not private:
                raise Unreachable(_("The storage has no SSH key yet: update its password, then reconnect."))
            transport.auth_publickey(storage.ssh_username, _load_key(private))
    except paramiko.AuthenticationException as error:
        transport.close()
        if password is not None:
            raise Unreachable(
                _("The storage server %(where)s refused the user name or password.") % {"where": where}
            ) from error
        raise KeyRefused(
            _(
                "The storage server %(where)s refused the console's key (was it removed from "
                "authorized_keys?). Update the password, then reconnect: the key is installed again."
            )
            % {"where": where}
        ) from error
    except (paramiko.SSHException, EOFError, OSError) as error:
        transport.close()
        raise Unreachable(
            _("Cannot log in to the storage server %(where)s: %(reason)s.")
            % {"where": where, "reason": error}
        ) from error
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(15)
    return transport


def run(transport, command: str, *, stdin: bytes | None = None, timeout: float = CHANNEL_TIMEOUT):
    """Run a command on the server: (exit status, stdout, stderr).

    A command given no `stdin` reads /dev/null, and this end never sends its channel's EOF. paramiko
    builds an EOF under the channel's lock but sends it after letting go (paramiko#1115, #1705): when a
    quick command had ended meanwhile, the CLOSE paramiko's own thread answers the server with could go
    first, and OpenSSH then drops the whole connection ("ieof packet referred to nonexistent channel"),
    every SFTP session on it too. A command given `stdin` reads it to the end before it ends, so its EOF
    goes out before the server can close the channel."""
    channel = transport.open_session(timeout=CHANNEL_OPEN_TIMEOUT)
    try:
        channel.settimeout(timeout)
        if stdin is None:
            channel.exec_command(f"exec </dev/null; {command}")
        else:
            channel.exec_command(command)
            channel.sendall(stdin)
            channel.shutdown_write()
        out, err = bytearray(), bytearray()
        while True:
            data = channel.recv(1 << 16)
            if not data:
                break
            out += data
        while True:
            data = channel.recv_stderr(1 << 16)
            if not data:
                break
            err += data
        status = channel.recv_exit_status()
        return status, bytes(out), bytes(err)
    finally:
        channel.close()


def install_key(transport, public_key: str, *, options: str = "") -> None:
    """Authorize `public_key` for the login user, with `options` (authorized_keys(5)): once, replacing a
    line of the same key with other options."""
    line = shlex.quote(f"{options} {public_key}" if options else public_key)
    blob = shlex.quote(public_key.split()[1])
    keys, tmp = "~/.ssh/authorized_keys", "~/.ssh/authorized_keys.imageconsole"
    status, _out, err = run(
        transport,
        f"umask 077 && mkdir -p ~/.ssh && touch {keys} && (grep -qxF {line} {keys} || "
        f"{{ grep -vF -e {blob} {keys} > {tmp}; printf '%s\\n' {line} >> {tmp} && mv {tmp} {keys}; }})",
    )
    if status != 0:
        raise StorageError(
            _("Cannot install the console's key on the server: %(reason)s")
            % {"reason": err.decode(errors="replace").strip()}
        )


def enroll(storage, password: str, *, provisional: bool = False) -> None:
    """Log in with the password (recording the server's host key when none is yet), install the
    storage's key (generated on first use) and keep the password encrypted. The storage is not saved.

    `provisional` (the add wizard's connection test): the key stops logging in after PROVISIONAL_KEY_DAYS
    (`expiry-time`), so a wizard left before the storage is created leaves no lasting access behind;
    `confirm_key` makes it permanent when the storage is created."""
    transport = open_transport(storage, password=password, pin_host_key=True)
    try:
        if not storage.ssh_private_key_encrypted:
            private, public = generate_key(f"{KEY_COMMENT}-{storage.name}")
            storage.set_ssh_private_key(private)
            storage.ssh_public_key = public
        install_key(transport, storage.ssh_public_key, options=_provisional() if provisional else "")
    finally:
        transport.close()
    storage.set_ssh_password(password)


PROVISIONAL_KEY_DAYS = 1


def _provisional() -> str:
    # sshd reads the time in the server's own time zone: a day from now in UTC is 10 to 38 hours there.
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=PROVISIONAL_KEY_DAYS)
    return f'expiry-time="{until:%Y%m%d%H%M}"'


def confirm_key(storage) -> None:
    """The storage is created: its key, installed provisionally by the add wizard, is made permanent."""
    transport = open_transport(storage)
    try:
        install_key(transport, storage.ssh_public_key)
    finally:
        transport.close()


class Connection:
    """One SSH connection to a storage server (at `address`: the control address it was added by, or
    its address in the data network), with idle SFTP channels kept for reuse."""

    def __init__(self, storage, transport, *, address: str | None = None):
        self.storage = storage
        self.transport = transport
        self.address = address or storage.host
        self._idle: list = []
        self._mutex = threading.Lock()
        self._locker = None
        self._shared_holders = 0
        self._lock_mutex = threading.Lock()
        self._pipes = None  # sshpipe.Pipes, False when this server cannot have them
        self._pipes_mutex = threading.RLock()

    @property
    def alive(self) -> bool:
        return self.transport.is_active()

    def gone(self, error: BaseException) -> Unreachable:
        self.close()
        return Unreachable(
            _("The storage server %(where)s of “%(name)s” went away: %(reason)s")
            % {
                "where": f"{self.address}:{self.storage.ssh_port}",
                "name": self.storage.name,
                "reason": error or type(error).__name__,
            }
        )

    @contextmanager
    def sftp(self):
        import paramiko

        with self._mutex:
            client = self._idle.pop() if self._idle else None
        try:
            if client is None:
                client = paramiko.SFTPClient.from_transport(self.transport)
                client.get_channel().settimeout(CHANNEL_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError, AttributeError) as error:
            raise self.gone(error) from error
        try:
            yield client
        except (TimeoutError, paramiko.SSHException, EOFError) as error:
            client.close()
            raise self.gone(error) from error
        except BaseException as error:
            if not self.alive:
                client.close()
                if isinstance(error, OSError):
                    raise self.gone(error) from error
                raise
            with self._mutex:
                self._idle.append(client)
            raise
        else:
            with self._mutex:
                self._idle.append(client)

    def pipes(self):
        """The OpenSSH connection that new chunks are written through (sshpipe.py), or None when this
        machine has no `ssh` client or the server no python3: then chunks go over SFTP."""
        with self._pipes_mutex:
            if self._pipes is None:
                self._pipes = self._open_pipes() or False
            elif self._pipes and not self._pipes.alive:
                self._pipes.close()
                self._pipes = None
                raise self.gone(ConnectionError(_("the SSH connection for writing closed")))
            return self._pipes or None

    def _open_pipes(self):
        from . import sshpipe

        if not getattr(settings, "STORAGE_SSH_CLIENT", True) or not sshpipe.client_available():
            return None
        status, _out, _err = self.run("command -v python3")
        if status != 0:
            logger.info("%s has no python3: chunks are written over SFTP", self.storage.name)
            return None
        host, port = self.transport.getpeername()[:2]
        try:
            return sshpipe.Pipes(
                host=host,
                port=port,
                user=self.storage.ssh_username,
                host_key=self.storage.ssh_host_key,
                private_key=self.storage.get_ssh_private_key(),
            )
        except sshpipe.PipeBroken as error:
            logger.warning(
                "%s: ssh did not connect (%s): chunks are written over SFTP", self.storage.name, error
            )
            return None

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float = CHANNEL_TIMEOUT):
        import paramiko

        try:
            return run(self.transport, command, stdin=stdin, timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise self.gone(error) from error

    def check(self, command: str, *, stdin: bytes | None = None) -> bytes:
        status, out, err = self.run(command, stdin=stdin)
        if status == -1 or (status != 0 and not self.alive):
            # paramiko's -1: the channel closed without an exit status, the server went away mid-command.
            raise self.gone(EOFError(err.decode(errors="replace").strip() or "the connection closed"))
        if status != 0:
            reason = err.decode(errors="replace").strip() or f"exit status {status}"
            raise StorageError(
                _("A command on the storage server of “%(name)s” failed: %(reason)s")
                % {"name": self.storage.name, "reason": reason}
            )
        return out

    # The cleanup lock: flock on the server, taken by a shell on a channel of its own.
    def open_lock(self, lock_path: str):
        import paramiko

        try:
            channel = self.transport.open_session(timeout=CHANNEL_OPEN_TIMEOUT)
            channel.settimeout(None)
            channel.exec_command(
                f"exec 9>>{shlex.quote(lock_path)} || exit 1; echo ready; "
                "while read -r op; do flock -$op 9 && echo ok || echo failed; done"
            )
            file = channel.makefile("rb")
            if file.readline().strip() != b"ready":
                raise StorageError(
                    _("Cannot open the lock file %(path)s on the server.") % {"path": lock_path}
                )
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise self.gone(error) from error
        return channel, file

    def lock_op(self, lock, op: str) -> None:
        import paramiko

        channel, file = lock
        try:
            channel.sendall(op.encode() + b"\n")
            answer = file.readline().strip()
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise self.gone(error) from error
        if answer != b"ok":
            raise self.gone(ConnectionError(_("the lock on the server was lost")))

    @contextmanager
    def shared_lock(self, lock_path: str):
        """Shared by every thread of this process (one lock, counted), released when the last leaves."""
        with self._lock_mutex:
            if self._locker is None:
                self._locker = self.open_lock(lock_path)
            if self._shared_holders == 0:
                self.lock_op(self._locker, "s")
            self._shared_holders += 1
        try:
            yield
        finally:
            with self._lock_mutex:
                self._shared_holders -= 1
                if self._shared_holders == 0 and self.alive:
                    with suppress(StorageError):
                        self.lock_op(self._locker, "u")

    @contextmanager
    def exclusive_lock(self, lock_path: str):
        lock = self.open_lock(lock_path)
        try:
            self.lock_op(lock, "x")
            yield
        finally:
            lock[0].close()

    def close(self) -> None:
        with self._pipes_mutex:
            pipes, self._pipes = self._pipes, None
        if pipes:
            pipes.close()
        with self._mutex:
            idle, self._idle = self._idle, []
        for client in idle:
            with suppress(Exception):
                client.close()
        with suppress(Exception):
            self.transport.close()


_connections: dict[tuple, Connection] = {}
_connections_mutex = threading.Lock()


def _connection_key(storage, address: str) -> tuple:
    return (
        os.getpid(),
        storage.pk,
        address,
        storage.ssh_port,
        storage.ssh_username,
        storage.ssh_host_key,
        storage.ssh_private_key_encrypted,
    )


def connection_for(storage, *, address: str | None = None) -> Connection:
    """The process's connection to the storage's server at `address` (default: the control address).
    Connections to different addresses of one server are distinct: control and data traffic keep to
    their own networks."""
    address = address or storage.host
    key = _connection_key(storage, address)
    with _connections_mutex:
        existing = _connections.get(key)
        if existing is not None and existing.alive:
            return existing
    connection = Connection(storage, open_transport(storage, address=address), address=address)
    with _connections_mutex:
        stale = _connections.pop(key, None)
        _connections[key] = connection
    if stale is not None:
        stale.close()
    return connection


def forget_connections(storage=None) -> None:
    """Close the cached connections (of one storage, or all)."""
    with _connections_mutex:
        keys = [key for key in _connections if storage is None or key[1] == storage.pk]
        closing = [_connections.pop(key) for key in keys]
    for connection in closing:
        connection.close()


def _q(path) -> str:
    return shlex.quote(str(path))


class ServerBackend(StandaloneBackend):
    """StandaloneBackend whose file operations go to the storage server over SSH, at `address` (default:
    the control address the storage was added by; `data_reader()` gives one at the data address)."""

    def __init__(self, storage, *, address: str | None = None):
        super().__init__(storage)
        self.direct = False  # chunks are written by the server (storage.backends.sshpipe)
        self.address = address or storage.host
        self.root = Path(posixpath.normpath(storage.mount_path or "/"))
        self.chunks_dir = self.root / "chunks"
        self.manifests_dir = self.root / "manifests"
        self.tmp_dir = self.root / "tmp"
        self.journals_dir = self.root / "journals"
        self.exports_dir = self.root / "exports"
        self.lock_path = self.root / ".gc.lock"
        self._connection: Connection | None = None
        self._room: list | None = None
        self._room_mutex = threading.Lock()

    @property
    def connection(self) -> Connection:
        if self._connection is None or not self._connection.alive:
            self._connection = connection_for(self.storage, address=self.address)
        return self._connection

    def sftp(self):
        return self.connection.sftp()

    # Layout and locking
    def check_remote_mount_path(self) -> None:
        check_mount_path(str(self.root), local=False)
        resolved = self.connection.check(f"realpath -m {_q(self.root)}").decode().strip()
        for root in _FORBIDDEN_ROOTS:
            if resolved == "/" or resolved == root or resolved.startswith(root + "/"):
                raise StorageError(
                    _(
                        "%(path)s is inside the system directory %(root)s on the server; choose a directory of its own."
                    )
                    % {"path": self.root, "root": root if resolved != "/" else "/"}
                )

    def ensure_layout(self) -> None:
        if self._layout_ready:
            return
        self.check_remote_mount_path()
        prefixes = " ".join(f"{prefix:02x}" for prefix in range(256))
        status, _out, err = self.connection.run(
            f"mkdir -p {_q(self.root)} && cd {_q(self.root)} && mkdir -p manifests tmp journals exports chunks "
            f"&& cd chunks && mkdir -p {prefixes} && touch {_q(self.lock_path)}"
        )
        if status != 0:
            raise StorageError(
                _("Cannot prepare %(path)s on the server: %(reason)s.")
                % {"path": self.root, "reason": err.decode(errors="replace").strip()}
            )
        self._layout_ready = True

    @contextmanager
    def _lock(self, *, exclusive: bool = False):
        if exclusive:
            with self.connection.exclusive_lock(str(self.lock_path)):
                yield
        else:
            with self.connection.shared_lock(str(self.lock_path)):
                yield

    # Capacity
    def _statvfs_values(self) -> tuple[int, int, int]:
        """(total, free for this user, block size) of the server's file system under the mount path."""
        out = self.connection.check(f"stat -f -c '%S %b %a' {_q(self.root)}")
        frsize, blocks, available = (int(value) for value in out.split())
        return blocks * frsize, available * frsize, frsize

    def free_bytes(self) -> int:
        return self._statvfs_values()[1]

    def _ensure_room(self, nbytes: int) -> None:
        """The reserve check before each chunk, without asking the server each time: its free space is
        read at most every few seconds and counted down by what this process writes in between."""
        from .base import reserve_message

        with self._room_mutex:
            now = time.monotonic()
            if (
                self._room is None
                or now - self._room[1] > 5
                or self._room[0] - nbytes < self.storage.reserved_bytes + 64 * CHUNK_SIZE
            ):
                self._room = [self.free_bytes(), now]
            free = self._room[0]
            if free - nbytes < self.storage.reserved_bytes:
                raise StorageFull(reserve_message(self.storage, free=free, nbytes=nbytes))
            self._room[0] -= nbytes

    def usage(self) -> Usage:
        total, free, _frsize = self._statvfs_values()
        out = self.connection.check(
            # A file with two names (a converted chunk's) counts once.
            f"cd {_q(self.root)} && find chunks manifests exports -type f -printf '%i %b\\n' 2>/dev/null "
            "| awk '!seen[$1]++ {s+=$2} END {print s+0}'"
        )
        used = int(out.strip() or 0) * 512
        logical = sum(manifest["size"] for _key, manifest in self._manifests())
        return Usage(
            total=total, used=used, free=free, logical=logical, dedup_ratio=(logical / used) if used else 1.0
        )

    # Chunks
    def _claim(self, path) -> bool:
        with self.sftp() as sftp:
            # A chunk that is not there needs no lock to be found missing (one round trip, the usual case
            # when writing new data); one that is there is claimed under the shared lock.
            if not self._exists(sftp, path):
                return False
        with self._lock(), self.sftp() as sftp:
            try:
                stat = sftp.stat(str(path))
            except FileNotFoundError:
                return False
            # Whole seconds: move the mtime at least one second on, so its creator sees the claim.
            mtime = max(int(time.time()), int(stat.st_mtime) + 1)
            try:
                sftp.utime(str(path), (mtime, mtime))
            except FileNotFoundError:
                return False
        return True

    def put_chunk(self, digest, data, runs, *, owner: str = "", note=None, aligned: bool = False):
        path = self.chunk_path(digest)
        if self._claim(path):
            return None
        self._ensure_room(len(data))
        tmp = self.tmp_dir / (f"{owner}~{uuid.uuid4().hex}.chunk" if owner else f"{uuid.uuid4().hex}.chunk")
        pipes = self.connection.pipes()
        if pipes is not None:
            return self._put_chunk_piped(pipes, path, tmp, data, runs, note=note)
        with self.sftp() as sftp:
            try:
                mtime = self._write_file(sftp, str(tmp), data, runs)
                entry = (path, 0, mtime * 10**9)
                if note is not None:
                    note(entry)  # journaled before it exists: a kill leaks nothing
                # No lock to publish a new chunk: its mtime is now, so no cleanup removes it.
                try:
                    sftp.rename(str(tmp), str(path))  # OpenSSH: link(2), never replaces
                except OSError:
                    if not self._exists(sftp, path):
                        raise
                    if self._claim(path):  # another writer stored it first: use theirs
                        return None
                    raise
                return entry
            except OSError as error:
                raise self._write_error(error) from error
            finally:
                with suppress(OSError):
                    sftp.remove(str(tmp))

    def _put_chunk_piped(self, pipes, path, tmp, data, runs, *, note):
        from .sshpipe import PipeBroken

        runs = [list(run) for run in (nonzero_runs(data) if runs is None else runs)]
        try:
            with pipes.receiver() as receiver:
                written = receiver.write(str(tmp), data, runs, fsync=self.fsync)
                if "errno" in written:
                    raise self._write_error(OSError(written["errno"], written["reason"]))
                entry = (path, 0, written["mtime"] * 10**9)
                if note is not None:
                    note(entry)  # journaled before it exists: a kill leaks nothing
                published = receiver.publish(str(tmp), str(path))
        except PipeBroken as error:
            raise self.connection.gone(ConnectionError(str(error))) from error
        if published.get("exists"):
            if self._claim(path):  # another writer stored it first: use theirs
                return None
            raise StorageError(_("A chunk vanished while it was being stored; try again."))
        if "errno" in published:
            raise self._write_error(OSError(published["errno"], published["reason"]))
        return entry

    def _write_error(self, error: OSError) -> StorageError:
        if isinstance(error, StorageError):
            return error
        if self._is_full():
            return StorageFull(disk_full_message(self.storage))
        return StorageError(
            _("Cannot write to %(path)s on the server: %(reason)s.")
            % {"path": self.root, "reason": os_reason(error)}
        )

    def _is_full(self) -> bool:
        with suppress(StorageError, ValueError):
            return self._statvfs_values()[1] < CHUNK_SIZE
        return False

    @staticmethod
    def _exists(sftp, path) -> bool:
        try:
            sftp.stat(str(path))
        except FileNotFoundError:
            return False
        return True

    def _write_file(self, sftp, name: str, data, runs=None) -> int:
        """Write `data` to a new file `name` on the server (all-zero blocks left as holes), fsync it, and
        return its mtime in seconds."""
        from paramiko.sftp import CMD_EXTENDED

        data = memoryview(data)
        # Unbuffered: paramiko then sends the caller's memory in 32 KiB requests without copying it whole.
        with sftp.open(name, "wx", bufsize=0) as file:
            file.set_pipelined(True)
            runs = nonzero_runs(data) if runs is None else runs
            for start, end in runs:
                file.seek(start)
                file.write(data[start:end])
            file.flush()
            if not runs or runs[-1][1] != len(data):
                file.truncate(len(data))
            if self.fsync:
                sftp._request(CMD_EXTENDED, "fsync@openssh.com", file.handle)
            mtime = int(file.stat().st_mtime)
        return mtime

    def remove_created(self, created: list[tuple]) -> int:
        if not created:
            return 0
        freed = 0
        with self._lock(exclusive=True), self.sftp() as sftp:
            for path, _inode, mtime_ns in created:
                with suppress(FileNotFoundError):
                    stat = sftp.stat(str(path))
                    if int(stat.st_mtime) * 10**9 <= mtime_ns:
                        sftp.remove(str(path))
                        freed += stat.st_size
        return freed

    # Journals
    def _journal_entries(self, path) -> list[tuple]:
        entries: dict[str, tuple] = {}
        try:
            with self.sftp() as sftp, sftp.open(str(path), "r") as file:
                text = file.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            try:
                chunk, inode, mtime = json.loads(line)
            except ValueError:
                continue
            entries[chunk] = (str(self.root / chunk), inode, mtime)
        return list(entries.values())

    def _unlink(self, path) -> None:
        with self.sftp() as sftp, suppress(FileNotFoundError):
            sftp.remove(str(path))

    def discard_journal(self, key: str) -> int:
        path = self.journal_path(key)
        freed = self.remove_created(self._journal_entries(path))
        self._unlink(path)
        return freed

    def settle(self, key: str) -> None:
        self._unlink(self.journal_path(key))

    # Manifests
    def load_manifest(self, key: str) -> dict:
        try:
            with self.sftp() as sftp, sftp.open(str(self.manifest_path(key)), "r") as file:
                manifest = json.loads(file.read())
        except FileNotFoundError:
            raise ReplicaNotFound(
                _("Replica %(key)s is not on storage “%(name)s”.") % {"key": key, "name": self.storage.name}
            ) from None
        if manifest.get("format") != MANIFEST_FORMAT:
            raise StorageError(_("The manifest of %(key)s has an unknown format.") % {"key": key})
        return manifest

    def write_manifest(self, key: str, manifest: dict, *, verified: int = 0) -> None:
        path = self.manifest_path(key)
        tmp = str(self.tmp_dir / f"{uuid.uuid4().hex}.manifest")
        payload = json.dumps(manifest, separators=(",", ":")).encode()
        with self.sftp() as sftp:
            try:
                if "/" in key:
                    self.connection.check(f"mkdir -p {_q(path.parent)}")
                self._write_file(sftp, tmp, payload, [(0, len(payload))] if payload else [])
                with self._lock():
                    for digest in {digest for digest in manifest["chunks"][verified:] if digest}:
                        if not self._exists(sftp, self.chunk_path(digest)):
                            raise StorageError(
                                _(
                                    "A chunk of %(key)s was removed by a data cleanup while it was written (the "
                                    "write took longer than the cleanup grace period). Store it again."
                                )
                                % {"key": key}
                            )
                    sftp.posix_rename(tmp, str(path))
            except OSError as error:
                raise self._write_error(error) from error
            finally:
                with suppress(OSError):
                    sftp.remove(tmp)

    # Converting chunk names (see StandaloneBackend.convert_chunk_names)
    def link_chunks(self, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        script = "".join(
            f"ln {_q(self.chunk_path(old))} {_q(self.chunk_path(new))} 2>/dev/null || "
            f"touch -c {_q(self.chunk_path(new))}; [ -e {_q(self.chunk_path(new))} ]\n"
            for old, new in pairs
        )
        with self._lock():
            self.connection.check("sh -e", stdin=script.encode())

    def replace_manifest(self, key: str, expected: dict, manifest: dict) -> bool:
        path = str(self.manifest_path(key))
        tmp = str(self.tmp_dir / f"{uuid.uuid4().hex}.manifest")
        payload = json.dumps(manifest, separators=(",", ":")).encode()
        with self.sftp() as sftp:
            try:
                self._write_file(sftp, tmp, payload, [(0, len(payload))])
                with self._lock(exclusive=True):
                    try:
                        with sftp.open(path, "r") as file:
                            current = json.loads(file.read())
                    except (FileNotFoundError, ValueError):
                        return False
                    if current != expected:
                        return False
                    sftp.posix_rename(tmp, path)
                return True
            except OSError as error:
                raise self._write_error(error) from error
            finally:
                with suppress(OSError):
                    sftp.remove(tmp)

    def _find(self, directory, *, printf: str = "%p\\n", name: str | None = None) -> list[str]:
        pattern = f" -name {shlex.quote(name)}" if name else ""
        out = self.connection.check(
            f"find {_q(directory)} -type f{pattern} -printf '{printf}' 2>/dev/null || true"
        )
        return out.decode(errors="surrogateescape").splitlines()

    def _manifests(self) -> Iterator[tuple[str, dict]]:
        prefix = str(self.manifests_dir) + "/"
        paths = [path for path in self._find(self.manifests_dir, name="*.json") if path.startswith(prefix)]
        with self.sftp() as sftp:
            for path in paths:
                try:
                    with sftp.open(path, "r") as file:
                        manifest = json.loads(file.read())
                except (FileNotFoundError, ValueError):
                    continue
                yield path[len(prefix) : -len(".json")], manifest

    # The interface
    def open_writer(self, key: str, *, expected_size: int | None = None) -> ChunkWriter:
        check_key(key)
        self.ensure_layout()
        self.check_capacity(expected_size or 0)
        return ServerChunkWriter(self, key)

    def resume_writer(self, previous_key, key, state, *, expected_size=None):
        """No resuming from hash midstates over SSH (yet): the caller starts a new writer and feeds it
        what was received, as for a backend that cannot (see StorageBackend.resume_writer on main)."""
        return None

    def exists(self, key: str) -> bool:
        with self.sftp() as sftp:
            return self._exists(sftp, self.manifest_path(key))

    def _read_chunk(self, digest: str, length: int, offset: int = 0) -> bytes:
        try:
            with self.sftp() as sftp, sftp.open(str(self.chunk_path(digest)), "r") as file:
                data = b"".join(file.readv([(offset, length)])) if length else b""
        except FileNotFoundError:
            raise StorageError(
                _("Chunk %(digest)s is missing from storage “%(name)s”; the replica is damaged.")
                % {"digest": digest, "name": self.storage.name}
            ) from None
        if len(data) != length:
            raise StorageError(_("A chunk file is shorter than its manifest says; the storage is damaged."))
        return data

    def delete(self, key: str) -> None:
        self._unlink(self.manifest_path(key))
        self.discard_journal(key)
        for path in self._find(self.tmp_dir, name=f"{check_key(key)}~*.chunk"):
            self._unlink(path)

    # Files of the mount path that are not the store's ("retrieve existing images" reads them)
    def real_path(self, path) -> str:
        """The server's real path of `path` (symlinks resolved there); FileNotFoundError when it is missing."""
        with self.sftp() as sftp:
            return sftp.normalize(str(path))

    def under_root(self, real: str) -> bool:
        """Whether a real path on the server is the mount path or under it."""
        root = self.real_path(self.root)
        return real == root or real.startswith(root.rstrip("/") + "/")

    def list_directory(self, path) -> list[tuple[str, int, int]]:
        """(name, mode, size) of each entry of a directory on the server, as lstat sees it: a symlink is
        a symlink, never what it points to."""
        with self.sftp() as sftp:
            return [
                (entry.filename, entry.st_mode or 0, entry.st_size or 0)
                for entry in sftp.listdir_attr(str(path))
            ]

    @contextmanager
    def open_mount_file(self, path):
        """(file, size) of a regular file under the mount path, for reading: refused (StorageError) when it
        is a symlink, not a regular file, or not under the mount path once the server resolves it. Errors
        of the connection inside the block raise Unreachable."""
        import stat as stat_module

        path = posixpath.normpath(str(path))
        with self.sftp() as sftp:
            try:
                info = sftp.lstat(path)
            except FileNotFoundError:
                raise StorageError(_("There is no file at %(path)s.") % {"path": path}) from None
            if not stat_module.S_ISREG(info.st_mode or 0):
                raise StorageError(_("%(path)s is not a regular file.") % {"path": path})
            real = sftp.normalize(path)
            root = sftp.normalize(str(self.root))
            if real != path or not real.startswith(root.rstrip("/") + "/"):
                raise StorageError(
                    _("%(path)s is outside the storage's mount path %(mount)s.")
                    % {"path": path, "mount": root}
                )
            with sftp.open(path, "rb") as file:
                yield file, info.st_size or 0

    # Exports
    def _export_file(self, key: str) -> Path:
        return self.exports_dir / check_key(key)

    def export_put(self, key, source, *, progress=None, should_cancel=None) -> int:
        source = Path(source)
        target = str(self._export_file(key))
        tmp = str(self.tmp_dir / f"{uuid.uuid4().hex}.export")
        report = Throttled(progress)
        try:
            self.ensure_layout()
            size = source.stat().st_size
            self.check_capacity(size)
            if "/" in key:
                self.connection.check(f"mkdir -p {_q(posixpath.dirname(target))}")
            done = 0
            with self.sftp() as sftp:
                try:
                    with open(source, "rb") as local, sftp.open(tmp, "wx", bufsize=0) as remote:
                        remote.set_pipelined(True)
                        while block := local.read(CHUNK_SIZE):
                            if should_cancel is not None and should_cancel():
                                raise Cancelled(_cancelled_message())
                            for start, end in nonzero_runs(memoryview(block)):
                                remote.seek(done + start)
                                remote.write(memoryview(block)[start:end])
                            done += len(block)
                            report(done)
                        remote.flush()
                        remote.truncate(size)
                    sftp.posix_rename(tmp, target)
                except OSError as error:
                    raise self._write_error(error) from error
                finally:
                    with suppress(OSError):
                        sftp.remove(tmp)
        finally:
            with suppress(FileNotFoundError):
                source.unlink()
        report(size, final=True)
        return size

    def export_size(self, key: str) -> int:
        try:
            with self.sftp() as sftp:
                return sftp.stat(str(self._export_file(key))).st_size
        except FileNotFoundError:
            raise ReplicaNotFound(
                _("Export %(key)s is not on storage “%(name)s”.") % {"key": key, "name": self.storage.name}
            ) from None

    def export_path(self, key: str) -> None:
        return None

    def export_read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        size = self.export_size(key)
        end = size if end is None else min(end, size)
        path = str(self._export_file(key))

        def blocks():
            with self.sftp() as sftp, sftp.open(path, "r") as file:
                offset = start
                while offset < end:
                    length = min(CHUNK_SIZE, end - offset)
                    data = b"".join(file.readv([(offset, length)]))
                    if not data:
                        raise StorageError(_("Export %(key)s is shorter than it was.") % {"key": key})
                    offset += len(data)
                    yield data

        return blocks()

    def export_delete(self, key: str) -> None:
        self._unlink(self._export_file(key))

    def test_connection(self) -> None:
        # A connection of its own, closed afterwards: transfers running on the shared one go on.
        self._connection = Connection(
            self.storage, open_transport(self.storage, address=self.address), address=self.address
        )
        try:
            self._test_connection()
        finally:
            self._connection.close()
            self._connection = None

    def _test_connection(self) -> None:
        self._layout_ready = False
        self.ensure_layout()
        probe = str(self.tmp_dir / f"{uuid.uuid4().hex}.probe")
        payload = uuid.uuid4().bytes
        with self.sftp() as sftp:
            try:
                self._write_file(sftp, probe, payload)
                with sftp.open(probe, "r") as file:
                    if file.read() != payload:
                        raise StorageError(
                            _("What was written to %(path)s did not read back.") % {"path": self.root}
                        )
            except OSError as error:
                raise StorageError(
                    _("Cannot write to %(path)s on the server: %(reason)s.")
                    % {"path": self.root, "reason": os_reason(error)}
                ) from error
            finally:
                with suppress(OSError):
                    sftp.remove(probe)
        self.connection.check("command -v flock find stat >/dev/null")

    def data_address(self) -> str:
        """The address compute hosts read images from: the server's address in the data network when
        one is set, else the address it was added by (for the compute side's image cache)."""
        if not self.storage.data_network:
            return self.storage.host
        return address_in(self.connection, self.storage.data_network)

    def data_reader(self) -> ServerBackend:
        """This backend, or with a data network one whose reads go to the server's address in it over a
        connection of their own (the same pinned host key and storage key).

        No fallback to the control address: an operator sets a data network to keep image traffic off
        the management network, so a data address that cannot be reached is an error that names it."""
        network = self.storage.data_network
        if not network:
            return self
        try:
            address = self.data_address()
            reader = ServerBackend(self.storage, address=address)
            reader.connection  # noqa: B018 (connect now: the error names the data network)
        except StorageError as error:
            raise DataNetworkUnreachable(
                _(
                    "Cannot read from the storage “%(name)s” over its data network %(network)s: %(reason)s "
                    "Images are not read over the management network instead; repair the data network, or "
                    "clear it in the storage's settings to read through %(host)s."
                )
                % {"name": self.storage.name, "network": network, "reason": error, "host": self.storage.host}
            ) from error
        return reader

    def copy_to(self, key, target, *, progress=None, should_cancel=None):
        if isinstance(target, ServerBackend) and sync_network_of(self, target):
            return sync_direct(self, key, target, progress=progress, should_cancel=should_cancel)
        return super().copy_to(key, target, progress=progress, should_cancel=should_cancel)

    def reconnect(self) -> None:
        """Test the connection; when the server refuses the console's key and a password is kept, log in
        with the password, install the key again and test once more."""
        try:
            self.test_connection()
        except KeyRefused:
            password = self.storage.get_ssh_password()
            if not password:
                raise
            try:
                enroll(self.storage, password)
            except Unreachable as error:
                raise Unreachable(
                    _(
                        "The storage server %(where)s refused the console's key, and then the kept password "
                        "(%(reason)s). Update the password, then reconnect."
                    )
                    % {"where": f"{self.storage.host}:{self.storage.ssh_port}", "reason": error}
                ) from error
            self.test_connection()

    def cleanup(self, *, referenced_keys: set[str], grace_seconds: float) -> CleanupResult:
        self.ensure_layout()
        now = time.time()
        cutoff = now - grace_seconds
        tmp_cutoff = min(cutoff, now - TMP_MIN_AGE_SECONDS)
        freed = replicas = blobs = 0
        doomed: list[str] = []
        with self._lock(exclusive=True):
            live: set[str] = set()
            ages = {}
            for line in self._find(self.manifests_dir, printf="%T@ %b %p\\n", name="*.json"):
                mtime, blocks, path = line.split(" ", 2)
                ages[path] = (float(mtime), int(blocks) * 512)
            for key, manifest in list(self._manifests()):
                path = str(self.manifests_dir / f"{key}.json")
                mtime, size = ages.get(path, (now, 0))
                if key not in referenced_keys and mtime < cutoff:
                    doomed.append(path)
                    freed += size
                    replicas += 1
                    continue
                live.update(digest for digest in manifest["chunks"] if digest)
            for line in self._find(self.journals_dir, printf="%T@ %p\\n"):
                mtime, path = line.split(" ", 1)
                if float(mtime) < cutoff:
                    doomed.append(path)
            # A file with several names (a chunk converted to BLAKE3 keeps its SHA256 name until now) frees
            # its bytes only when every name goes.
            names_left: dict[str, list[int]] = {}  # inode -> [names not yet doomed, its blocks]
            for directory, keep, limit in ((self.chunks_dir, live, cutoff), (self.tmp_dir, (), tmp_cutoff)):
                for line in self._find(directory, printf="%T@ %b %n %i %p\\n"):
                    mtime, blocks, links, inode, path = line.split(" ", 4)
                    if posixpath.basename(path) in keep or float(mtime) >= limit:
                        continue
                    doomed.append(path)
                    left = names_left.setdefault(inode, [int(links), int(blocks) * 512])
                    left[0] -= 1
                    if left[0] == 0:
                        freed += left[1]
                    blobs += 1
            if doomed:
                payload = b"".join(path.encode(errors="surrogateescape") + b"\0" for path in doomed)
                self.connection.check("xargs -0 -r rm -f --", stdin=payload)
        return CleanupResult(bytes_freed=freed, replicas_removed=replicas, blobs_removed=blobs)


class ServerChunkWriter(ChunkWriter):
    """ChunkWriter whose journal is a file on the server, appended over SFTP."""

    def __init__(self, backend: ServerBackend, key: str):
        super().__init__(backend, key)
        self._journal_sftp = None

    def _note(self, entry: tuple) -> None:
        if self._journal is None:
            self._journal_sftp = self.backend.sftp()
            sftp = self._journal_sftp.__enter__()
            self._journal = sftp.open(str(self.backend.journal_path(self._journal_key)), "a")
        path, inode, mtime = entry
        relative = posixpath.relpath(str(path), str(self.backend.root))
        self._journal.write(json.dumps([relative, inode, mtime]) + "\n")
        self._journal.flush()

    def _close_journal(self) -> None:
        if self._journal is not None:
            with suppress(Exception):
                self._journal.close()
            self._journal = None
        if self._journal_sftp is not None:
            with suppress(Exception):
                self._journal_sftp.__exit__(None, None, None)
            self._journal_sftp = None

    def _journal_to(self, key: str) -> None:
        with self._mutex:
            if key != self._journal_key:
                self._close_journal()
                with self.backend.sftp() as sftp, suppress(FileNotFoundError):
                    sftp.posix_rename(
                        str(self.backend.journal_path(self._journal_key)), str(self.backend.journal_path(key))
                    )
                self._journal_key = key

    def abort(self) -> None:
        if self._closed:
            return
        self._close(cancel=True)
        with suppress(StorageError):
            self.backend.remove_created([tuple(self._own.get(str(c[0]), c)) for c in self._created])
            if not self._own or len(self._created) == len(self._own):
                self.backend._unlink(self.backend.journal_path(self._journal_key))


# Free disk: a disk of the server with no partitions, file systems or mounts, formatted and mounted at the
# mount path on the administrator's confirmation.

_SUDO = 'if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; '


def _free_disks_from_lsblk(text: str) -> list[dict]:
    """The whole disks (and loop devices) in `lsblk --json` output with nothing on them."""
    free = []
    for device in json.loads(text).get("blockdevices", []):
        if device.get("type") not in ("disk", "loop"):
            continue
        if device.get("children") or device.get("fstype") or device.get("pttype"):
            continue
        if device.get("mountpoint") or any(device.get("mountpoints") or []):
            continue
        if str(device.get("ro")) in ("1", "True", "true") or not int(device.get("size") or 0):
            continue
        free.append({"path": device.get("path") or f"/dev/{device['name']}", "size": int(device["size"])})
    return free


def list_free_disks_on(transport) -> list[dict]:
    """[{"path", "size"}] of the server's disks that have no partitions, file systems or mounts."""
    status, out, err = run(
        transport,
        _SUDO + "$SUDO lsblk --json --bytes --output NAME,PATH,SIZE,TYPE,FSTYPE,PTTYPE,MOUNTPOINTS,RO",
    )
    if status != 0:
        raise StorageError(
            _("Cannot list the disks of the server: %(reason)s")
            % {"reason": err.decode(errors="replace").strip()}
        )
    return _free_disks_from_lsblk(out.decode())


def list_free_disks(storage, *, password: str | None = None) -> list[dict]:
    transport = open_transport(storage, password=password, pin_host_key=password is not None)
    try:
        return list_free_disks_on(transport)
    finally:
        transport.close()


def format_free_disk(storage, disk: str, *, filesystem: str = "ext4") -> None:
    """Partition `disk` (one partition over the whole disk), make a file system on it, mount it at the
    storage's mount path and add it to /etc/fstab by UUID. Everything on the disk is erased: the caller
    has the administrator's confirmation. Refused unless the disk is still free."""
    if filesystem not in ("ext4", "xfs"):
        raise StorageError(_("The file system must be ext4 or xfs."))
    transport = open_transport(storage)
    try:
        if disk not in {entry["path"] for entry in list_free_disks_on(transport)}:
            raise StorageError(
                _("%(disk)s is not a free disk of the server (it has partitions, a file system or a mount).")
                % {"disk": disk}
            )
        mkfs = "mkfs.ext4 -q -F" if filesystem == "ext4" else "mkfs.xfs -q -f"
        script = (
            "set -e; " + _SUDO + f"disk={_q(disk)}; mp={_q(storage.mount_path)}; "
            'if $SUDO mountpoint -q "$mp" 2>/dev/null; then echo "$mp is already a mount point" >&2; exit 1; fi; '
            "printf 'label: gpt\\n,,L\\n' | $SUDO sfdisk --quiet --wipe always \"$disk\" >/dev/null; "
            '$SUDO partx -u "$disk" 2>/dev/null || true; '
            'part=""; for i in $(seq 50); do '
            'part=$(lsblk -nrpo NAME,TYPE "$disk" | awk \'$2=="part" {print $1; exit}\'); '
            '[ -n "$part" ] && [ -b "$part" ] && break; sleep 0.1; done; '
            '[ -n "$part" ] || { echo "no partition appeared on $disk" >&2; exit 1; }; '
            f'$SUDO {mkfs} "$part"; '
            'uuid=$($SUDO blkid -s UUID -o value "$part"); '
            '$SUDO mkdir -p "$mp"; $SUDO mount "$part" "$mp"; '
            f"grep -q \"^UUID=$uuid \" /etc/fstab || printf 'UUID=%s %s {filesystem} defaults,nofail 0 2\\n' "
            '"$uuid" "$mp" | $SUDO tee -a /etc/fstab >/dev/null; '
            '[ "$(id -u)" = 0 ] || $SUDO chown "$(id -u):$(id -g)" "$mp"'
        )
        status, _out, err = run(transport, script, timeout=600)
        if status != 0:
            raise StorageError(
                _("Formatting %(disk)s failed: %(reason)s")
                % {"disk": disk, "reason": err.decode(errors="replace").strip()}
            )
    finally:
        transport.close()


# Sync between two storage servers, directly over the image sync network: the target pulls the chunks it
# lacks from the source with a key the console installs on the source for this one sync (restricted to
# reading chunk files by name: a forced command) and removes afterwards. The console only orchestrates.

_READ_CHUNKS = (
    "cd {chunks} || exit 3; while read -r d; do h=${{d%.b3}}; case $h in *[!0-9a-f]*) exit 2;; esac; "
    "[ ${{#h}} -eq 64 ] || exit 2; f=${{d%${{d#??}}}}/$d; s=$(stat -c %s $f) || exit 3; "
    "echo $s $d; cat $f || exit 3; done"
)


def address_in(connection: Connection, network: str) -> str:
    """The server's IPv4 or IPv6 address inside `network`, or StorageError."""
    import ipaddress

    net = ipaddress.ip_network(network, strict=False)
    out = connection.check("ip -o addr show 2>/dev/null || true").decode()
    for line in out.splitlines():
        fields = line.split()
        for index, field in enumerate(fields[:-1]):
            if field in ("inet", "inet6"):
                with suppress(ValueError):
                    address = ipaddress.ip_interface(fields[index + 1]).ip
                    if address in net:
                        return str(address)
    raise StorageError(
        _("The storage server of “%(name)s” has no address in the network %(network)s.")
        % {"name": connection.storage.name, "network": network}
    )


def sync_network_of(source, target) -> str:
    """The image sync network of a sync: the target's when both set one (seed 003)."""
    return target.storage.sync_network or source.storage.sync_network


def sync_direct(source: ServerBackend, key: str, target: ServerBackend, *, progress, should_cancel):
    from .base import IngestResult

    manifest = source.load_manifest(key)
    target.ensure_layout()
    chunk_size = manifest["chunk_size"]
    lengths = {}
    for index, digest in enumerate(manifest["chunks"]):
        if digest:
            lengths[digest] = min(chunk_size, manifest["size"] - index * chunk_size)
    digests = list(dict.fromkeys(digest for digest in manifest["chunks"] if digest))
    missing = [digest for digest in digests if not target._claim(target.chunk_path(digest))]
    target.check_capacity(sum(lengths[digest] for digest in missing))
    report = Throttled(progress)
    done = manifest["size"] - sum(lengths[digest] for digest in missing)
    created: list[tuple] = []
    stored = 0
    if missing:
        if '"' in str(source.root) or "\n" in str(source.root):
            raise StorageError(_("The mount path of the source cannot be used by a direct sync."))
        address = address_in(source.connection, sync_network_of(source, target))
        token = uuid.uuid4().hex
        comment = f"imageconsole-sync-{token}"
        private, public = generate_key(comment)
        command = _READ_CHUNKS.format(chunks=_q(source.chunks_dir))
        install_key(source.connection.transport, public, options=f'restrict,command="{command}"')
        key_file = str(target.tmp_dir / f"sync-{token}.key")
        known_file = str(target.tmp_dir / f"sync-{token}.known")
        try:
            with target.sftp() as sftp:
                with sftp.open(key_file, "wx") as file:
                    file.chmod(0o600)
                    file.write(private.encode())
                with sftp.open(known_file, "wx") as file:
                    host = address if ":" not in address else f"[{address}]"
                    if source.storage.ssh_port != 22:
                        host = f"[{address}]:{source.storage.ssh_port}"
                    file.write(f"{host} {source.storage.ssh_host_key}\n".encode())
            receive = (
                f"cd {_q(target.root)} || exit 3; "
                "while read -r size d; do "
                'case $size in ""|*[!0-9]*) echo "bad frame" >&2; exit 4;; esac; '
                f"t=tmp/sync~{token}~$d.chunk; "
                "dd of=$t ibs=$size count=1 obs=65536 iflag=fullblock conv=sparse,fsync status=none || exit 5; "
                '[ "$(stat -c %s $t)" = "$size" ] || { echo "short chunk $d" >&2; exit 6; }; '
                # A chunk is checked against its name: by sha256sum, or b3sum for a BLAKE3 name (Debian's
                # package b3sum; a server without it checks the length only).
                "case $d in *.b3) if command -v b3sum >/dev/null; then h=$(b3sum --no-names < $t); else h=${d%.b3}; fi; "
                "h=$h.b3;; *) h=$(sha256sum < $t | cut -c1-64);; esac; "
                '[ "$h" = "$d" ] || { echo "chunk $d does not match its name" >&2; exit 7; }; '
                "p=chunks/${d%${d#??}}/$d; "
                'if ln $t $p 2>/dev/null; then echo "new $d $size $(stat -c %Y $p)"; else touch $p; echo "had $d $size 0"; fi; '
                "rm -f $t; done"
            )
            ssh = (
                f"ssh -T -i {_q(key_file)} -o UserKnownHostsFile={_q(known_file)} -o StrictHostKeyChecking=yes "
                "-o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=10 -o ServerAliveInterval=15 "
                f"-p {int(source.storage.ssh_port)} {_q(source.storage.ssh_username)}@{_q(address)}"
            )
            names = "".join(f"{digest}\n" for digest in missing).encode()
            script = f"set -o pipefail 2>/dev/null; {ssh} | (set -e; {receive}); rc=$?; rm -f {_q(key_file)} {_q(known_file)}; exit $rc"
            channel = target.connection.transport.open_session(timeout=CHANNEL_OPEN_TIMEOUT)
            try:
                channel.settimeout(CHANNEL_TIMEOUT)
                channel.exec_command(f"bash -c {_q(script)}")
                channel.sendall(names)
                channel.shutdown_write()
                lines = channel.makefile("rb")
                for line in lines:
                    state, digest, size, mtime = line.decode().split()
                    if state == "new":
                        created.append((target.chunk_path(digest), 0, int(mtime) * 10**9))
                        stored += int(size)
                    done += int(size)
                    report(done)
                    if should_cancel is not None and should_cancel():
                        raise Cancelled(_cancelled_message())
                status = channel.recv_exit_status()
                errors = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
            finally:
                channel.close()
            if status != 0:
                raise StorageError(
                    _("The sync from “%(source)s” to “%(target)s” over %(address)s failed: %(reason)s")
                    % {
                        "source": source.storage.name,
                        "target": target.storage.name,
                        "address": address,
                        "reason": errors or f"exit status {status}",
                    }
                )
            target.write_manifest(key, dict(manifest, created_at=timezone.now().isoformat()))
        except BaseException:
            with suppress(StorageError):
                target.remove_created(created)
            raise
        finally:
            with suppress(StorageError):
                source.connection.run(f"sed -i '/ {comment}$/d' ~/.ssh/authorized_keys")
            with suppress(StorageError), target.sftp() as sftp:
                for name in (key_file, known_file):
                    with suppress(OSError):
                        sftp.remove(name)
    else:
        target.write_manifest(key, dict(manifest, created_at=timezone.now().isoformat()))
    report(manifest["size"], final=True)
    return IngestResult(
        key=key, size=manifest["size"], md5=manifest["md5"], sha256=manifest["sha256"], bytes_stored=stored
    )
