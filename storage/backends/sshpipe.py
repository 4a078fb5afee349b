"""Chunk writes to a storage server through OpenSSH's own client, for speed.

paramiko encrypts and frames every 32 KiB packet in Python, under the GIL that the import's hashing
threads need: over SFTP the console wrote to a server at half of what `ssh server 'cat > /dev/null'`
moves. So the bytes of new chunks go through `ssh` (OpenSSH, AES-GCM in C) instead, to a small receiver
program run by python3 on the server; everything else (claims, the cleanup lock, manifests, journals,
reads) stays on paramiko.

One OpenSSH connection per storage and process (a ControlMaster), one channel per concurrent writer
(its upload concurrency), each running the receiver. The master logs in with the storage's key, written
for that moment to a private directory and removed as soon as the master is up; the server's host key
must be the pinned one (StrictHostKeyChecking against a known_hosts file holding it alone). The master and
the receivers read our pipes: when this process dies they see the end of their input and exit, so
nothing is left connected.

The receiver's protocol, one request after another on a channel, each a 4-byte big-endian length and
that many bytes of JSON:
    {"op": "write", "tmp": PATH, "size": N, "runs": [[START, END], ...], "fsync": BOOL}
    followed by the bytes of each run (the chunk's non-zero runs; the rest stays a hole), which the
    receiver writes around the page cache (O_DIRECT, from a page-aligned buffer) when they are aligned
    to 4 KiB (whole chunks), else moves from its pipe into the file with splice(2); answered by a JSON line
    {"mtime": SECONDS} or {"errno": E, "reason": TEXT} (the file is then removed);
    {"op": "publish", "tmp": PATH, "path": PATH}
    answered {"published": true}, {"exists": true} (another writer was first) or an error; the temporary
    name is removed in every case. Publishing is link(2), which never replaces a file.

When the server has no python3 or this machine no `ssh`, chunks go over SFTP as before.
"""

from __future__ import annotations

import atexit
import fcntl
import io
import json
import logging
import os
import shlex
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager, suppress

logger = logging.getLogger("storage.sshpipe")

CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr"
HOST_ALIAS = "imageconsole-storage"
MASTER_TIMEOUT = 15
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1 << 20  # /proc/sys/fs/pipe-max-size by default

RECEIVER = r"""
import json, mmap, os, struct, sys
out = sys.stdout.buffer
view = memoryview(bytearray(1 << 20))
splice = getattr(os, "splice", None)
direct = getattr(os, "O_DIRECT", 0)
aligned_view = memoryview(mmap.mmap(-1, 1 << 20)) if direct else None
try:
    import fcntl
    fcntl.fcntl(0, 1031, 1 << 20)  # F_SETPIPE_SZ
except (ImportError, OSError):
    pass
def exactly(n):
    data = b""
    while len(data) < n:
        more = os.read(0, n - len(data))
        if not more:
            sys.exit(0 if not data else 1)
        data += more
    return data
def answer(**values):
    out.write(json.dumps(values).encode() + b"\n")
    out.flush()
def failed(error):
    answer(errno=error.errno or 0, reason=error.strerror or str(error))
def drain(count):
    while count:
        n = os.readv(0, [view[: min(len(view), count)]])
        if not n:
            sys.exit(1)
        count -= n
def copy(fd, position, count):
    # From stdin to the file at position: in the kernel (splice) when stdin is a pipe, else through a
    # buffer. A write error reads the rest of the bytes sent and is returned.
    global splice
    while count:
        if splice is not None:
            try:
                n = splice(0, fd, count, offset_dst=position)
            except OSError as e:
                if e.errno == 22:
                    splice = None
                    continue
                drain(count)
                return e
        else:
            n = os.readv(0, [view[: min(len(view), count)]])
            done = 0
            try:
                while done < n:
                    done += os.pwrite(fd, view[done:n], position + done)
            except OSError as e:
                drain(count - n)
                return e
        if not n:
            sys.exit(1)
        position += n
        count -= n
    return None
def copy_direct(fd, position, count):
    # The same around the page cache (O_DIRECT): read into a page-aligned buffer, written from there.
    while count:
        want = min(len(aligned_view), count)
        got = 0
        while got < want:
            n = os.readv(0, [aligned_view[got:want]])
            if not n:
                sys.exit(1)
            got += n
        try:
            done = 0
            while done < want:
                done += os.pwrite(fd, aligned_view[done:want], position + done)
        except OSError as e:
            drain(count - want)
            return e
        position += want
        count -= want
    return None
out.write(b"ready\n")
out.flush()
while True:
    request = json.loads(exactly(struct.unpack(">I", exactly(4))[0]))
    tmp = request["tmp"]
    if request["op"] == "write":
        fd, error, runs = None, None, request["runs"]
        edges = [request["size"]] + [edge for run in runs for edge in run]
        aligned = direct and all(edge % 4096 == 0 for edge in edges)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            try:
                fd = os.open(tmp, flags | (direct if aligned else 0), 0o666)
            except OSError as e:
                if not aligned or e.errno != 22:
                    raise
                # This file system takes no O_DIRECT: through the page cache from now on.
                direct, aligned = 0, False
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                fd = os.open(tmp, flags, 0o666)
        except OSError as e:
            error = e
        for start, end in runs:
            if error is not None:
                drain(end - start)
            else:
                error = (copy_direct if aligned else copy)(fd, start, end - start)
        mtime = None
        if error is None:
            try:
                os.ftruncate(fd, request["size"])
                if request["fsync"]:
                    os.fsync(fd)
                mtime = int(os.fstat(fd).st_mtime)
            except OSError as e:
                error = e
        if fd is not None:
            os.close(fd)
        if error is None:
            answer(mtime=mtime)
        else:
            if fd is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            failed(error)
    elif request["op"] == "publish":
        try:
            os.link(tmp, request["path"])
            answer(published=True)
        except FileExistsError:
            answer(exists=True)
        except OSError as e:
            failed(e)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
"""


def _framed(request: dict) -> bytes:
    body = json.dumps(request).encode()
    return struct.pack(">I", len(body)) + body


class PipeBroken(Exception):
    """The receiver or its connection went away; the reason is the message."""


class Receiver:
    """One channel running the receiver."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        with suppress(OSError):  # fewer, larger writes and wake-ups on both sides of the pipe
            fcntl.fcntl(self.process.stdin.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        self.answers = io.BufferedReader(self.process.stdout)
        if self.answers.readline().strip() != b"ready":
            reason = self._reason()
            self.close()
            raise PipeBroken(reason)

    def _reason(self) -> str:
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        err = b""
        with suppress(OSError, ValueError):
            err = self.process.stderr.read() if self.process.poll() is not None else b""
        return err.decode(errors="replace").strip() or "the connection closed"

    def _send(self, *parts) -> dict:
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    view = view[os.write(self.process.stdin.fileno(), view) :]
            line = self.answers.readline()
        except (OSError, ValueError) as error:
            raise PipeBroken(self._reason() or str(error)) from error
        if not line:
            raise PipeBroken(self._reason())
        return json.loads(line)

    def write(self, tmp: str, data, runs, *, fsync: bool) -> dict:
        header = {"op": "write", "tmp": tmp, "size": len(data), "runs": runs, "fsync": fsync}
        data = memoryview(data)
        return self._send(_framed(header), *(data[start:end] for start, end in runs))

    def publish(self, tmp: str, path: str) -> dict:
        return self._send(_framed({"op": "publish", "tmp": tmp, "path": path}))

    def close(self) -> None:
        with suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            with suppress(OSError):
                stream.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


DIRECTORY_PREFIX = "ic-ssh-"


def sweep_orphaned_directories() -> int:
    """Remove the private directories (known_hosts, the control socket) of processes that are gone: an
    RQ work horse ends with os._exit and never closes its connections, which left one directory in the
    temporary directory per job that wrote to a storage server. Returns how many."""
    removed = 0
    if not os.path.isdir("/proc/self"):
        return removed
    with suppress(OSError), os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            pid = entry.name[len(DIRECTORY_PREFIX) :].split("-", 1)[0]
            if not entry.name.startswith(DIRECTORY_PREFIX) or not pid.isdigit():
                continue
            with suppress(OSError):
                if (
                    entry.is_dir(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_uid == os.getuid()
                ):
                    if not os.path.exists(f"/proc/{pid}"):
                        shutil.rmtree(entry.path, ignore_errors=True)
                        removed += 1
    return removed


class Pipes:
    """The OpenSSH master connection of one storage in this process, and its idle receivers."""

    def __init__(self, *, host: str, port: int, user: str, host_key: str, private_key: str):
        self.master: subprocess.Popen | None = None
        sweep_orphaned_directories()
        self.directory = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-")
        atexit.register(shutil.rmtree, self.directory, ignore_errors=True)  # (a process that ends normally)
        self.control = os.path.join(self.directory, "cm")
        known = os.path.join(self.directory, "known_hosts")
        with open(known, "w") as file:
            file.write(f"{HOST_ALIAS} {host_key}\n")
        key = os.path.join(self.directory, "key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(private_key)
        self.common = [
            "ssh",
            "-F",
            "/dev/null",
            "-T",
            "-S",
            self.control,
            "-p",
            str(port),
            "-l",
            user,
            "-o",
            f"HostKeyAlias={HOST_ALIAS}",
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"Ciphers={CIPHERS}",
            "-o",
            "Compression=no",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
            "-o",
            "LogLevel=ERROR",
            host,
        ]
        self._idle: list[Receiver] = []
        self._mutex = threading.Lock()
        self.receiver_command = f"exec python3 -u -c {shlex.quote(RECEIVER)}"
        # The master's own session reads our pipe until this process closes it (or dies).
        master_argv = [self.common[0], "-M", "-o", "ControlPersist=no", "-o", "ConnectTimeout=10",
                       "-o", "IdentitiesOnly=yes", "-i", key, *self.common[1:], "cat > /dev/null"]  # fmt: skip
        try:
            self.master = subprocess.Popen(
                master_argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + MASTER_TIMEOUT
            while not os.path.exists(self.control):
                if self.master.poll() is not None or time.monotonic() > deadline:
                    err = b""
                    if self.master.poll() is not None:
                        err = self.master.stderr.read()
                    raise PipeBroken(err.decode(errors="replace").strip() or "ssh did not connect")
                time.sleep(0.01)
        except BaseException:
            self.close()
            raise
        finally:
            with suppress(OSError):
                os.unlink(key)

    @contextmanager
    def receiver(self):
        with self._mutex:
            receiver = self._idle.pop() if self._idle else None
        if receiver is None or not receiver.alive:
            receiver = Receiver([*self.common, self.receiver_command])
        try:
            yield receiver
        except BaseException:
            # A broken channel, or a write cut short that leaves the receiver mid-request: never reused.
            receiver.close()
            raise
        else:
            with self._mutex:
                self._idle.append(receiver)

    @property
    def alive(self) -> bool:
        return self.master is not None and self.master.poll() is None

    def close(self) -> None:
        with self._mutex:
            idle, self._idle = self._idle, []
        for receiver in idle:
            receiver.close()
        master = self.master
        if master is not None:
            with suppress(OSError):
                master.stdin.close()
            try:
                master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()
            with suppress(OSError):
                master.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def client_available() -> bool:
    return shutil.which("ssh") is not None
