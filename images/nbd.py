"""A disk image's guest data read through `qemu-nbd`, without converting it to a file first.

`NbdExport(path, fmt=...)` starts `qemu-nbd --read-only` under the same prlimit as qemu-img convert,
on a Unix socket in a private directory. It speaks the NBD protocol's fixed newstyle handshake and simple replies to it (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md): `read_into`
reads guest bytes at an offset straight into a caller's buffer (a storage writer's chunk buffer), so the
bytes are copied once, from the socket. qemu-nbd decodes the format (VMDK grains, VHD blocks, compressed
streamOptimized VMDK) exactly as qemu-img convert does; it serves one client and exits when it leaves.

    with NbdExport(path, fmt="vmdk") as export:
        export.read_into(offset, view)
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from . import conf
from .inspection import QEMU_FORMATS, _prlimit, _qemu_env

NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1
OPT_EXPORT_NAME = 1
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
CMD_READ = 0
CMD_DISC = 2
REQUEST = struct.Struct(">IHHQQI")
REPLY = struct.Struct(">IIQ")
# A read is asked for in pieces of this size (qemu-nbd takes up to 32 MiB per request).
PIECE = 1024 * 1024
START_SECONDS = 10.0
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"]  # util-linux, as prlimit
SOCKET_PATH_MAX = 107
# glibc gives each buffer of 128 KiB or more a mapping of its own and unmaps it when it is freed, so every
# request qemu-nbd serves would fault its buffer's pages in again: qemu-nbd used 1.0-1.3 s of CPU per GiB
# of a VMDK here that way, and 0.7-0.9 s with its buffers kept on the heap.
NBD_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(128 * 1024 * 1024)}


class NbdError(Exception):
    """qemu-nbd did not start, broke the protocol or answered a read with an error."""


class NbdExport:
    def __init__(self, path: str | Path, *, fmt: str, directory: str | Path | None = None):
        """The socket goes into a new directory in `directory` (an import's staging directory, which
        goes with the import even when its worker is killed), or in /tmp where that path is too long."""
        self.path = str(path)
        self.fmt = QEMU_FORMATS.get(fmt, fmt)
        if directory is not None and len(str(directory)) > SOCKET_PATH_MAX - 20:
            directory = None
        self._directory = tempfile.mkdtemp(prefix="nbd-", dir=directory)
        self.socket_path = os.path.join(self._directory, "sock")
        self.size = 0
        self._process: subprocess.Popen | None = None
        self._socket: socket.socket | None = None
        self._cookie = 0

    def __enter__(self) -> NbdExport:
        try:
            self._start()
        except BaseException:
            self.close(stop=True)
            raise
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(stop=exc_type is not None)

    def _start(self) -> None:
        command = [
            # qemu-nbd exits when its client leaves, but waits for ever for one that never came (a worker
            # killed before it connected): it is killed with the thread that started it.
            *DIE_WITH_PARENT,
            *_prlimit(address_space=conf.convert_address_space(), cpu_seconds=None),
            "qemu-nbd",
            "--read-only",
            "--shared=1",
            f"--format={self.fmt}",
            f"--socket={self.socket_path}",
            self.path,
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**_qemu_env(), **NBD_ENV},
            start_new_session=True,
        )
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode("utf-8", "replace").strip().splitlines()
                raise NbdError(error[-1] if error else f"qemu-nbd exited with {self._process.returncode}")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.socket_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise NbdError("qemu-nbd did not open its socket") from None
                time.sleep(0.005)
        self._socket = sock
        try:
            self._handshake()
        except (OSError, NbdError) as error:
            # qemu-nbd may open its socket before it finds that it cannot read the file: its own words.
            raise self._exit_reason(error) from error

    def _exit_reason(self, error: Exception) -> NbdError:
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return error if isinstance(error, NbdError) else NbdError(f"qemu-nbd stopped answering: {error}")
        lines = self._process.stderr.read().decode("utf-8", "replace").strip().splitlines()
        return NbdError(lines[-1] if lines else f"qemu-nbd exited with {self._process.returncode}")

    def _recv_exactly(self, n: int) -> bytes:
        data = bytearray(n)
        self._recv_into(memoryview(data))
        return bytes(data)

    def _recv_into(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            n = self._socket.recv_into(view[got:])
            if n == 0:
                raise NbdError("qemu-nbd closed the connection")
            got += n

    def _handshake(self) -> None:
        magic, option_magic, flags = struct.unpack(">8sQH", self._recv_exactly(18))
        if magic != NBDMAGIC or option_magic != IHAVEOPT or not flags & FLAG_FIXED_NEWSTYLE:
            raise NbdError("qemu-nbd did not offer the fixed newstyle handshake")
        client_flags = FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES)
        name = b""  # qemu-nbd's one export is named "" unless --export-name says otherwise
        self._socket.sendall(struct.pack(">IQII", client_flags, IHAVEOPT, OPT_EXPORT_NAME, len(name)) + name)
        self.size, _transmission_flags = struct.unpack(">QH", self._recv_exactly(10))
        if not flags & FLAG_NO_ZEROES:
            self._recv_exactly(124)

    def read_into(self, offset: int, view: memoryview) -> None:
        try:
            self._read_into(offset, view)
        except OSError as error:
            raise self._exit_reason(error) from error

    def _read_into(self, offset: int, view: memoryview) -> None:
        """Fill `view` with the guest bytes from `offset` on.

        The read is asked for in pieces of `PIECE` bytes, all at once, so that qemu-nbd may work on them
        side by side; it answers each when it is done, in any order, and each lands in its own place in
        `view`."""
        waiting: dict[int, tuple[int, memoryview]] = {}
        requests = []
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            self._cookie += 1
            waiting[self._cookie] = (offset + start, piece)
            requests.append(
                REQUEST.pack(REQUEST_MAGIC, 0, CMD_READ, self._cookie, offset + start, len(piece))
            )
        self._socket.sendall(b"".join(requests))
        while waiting:
            magic, error, cookie = REPLY.unpack(self._recv_exactly(REPLY.size))
            if magic != SIMPLE_REPLY_MAGIC or cookie not in waiting:
                raise NbdError("qemu-nbd's answer matches no request")
            at, piece = waiting.pop(cookie)
            if error:
                raise NbdError(f"qemu-nbd could not read at {at}: {os.strerror(error)}")
            self._recv_into(piece)

    def close(self, *, stop: bool = False) -> None:
        """Leave (qemu-nbd exits with its last client); stop qemu-nbd if it does not, or at once with
        `stop` (a read failed or the import was cancelled)."""
        if self._socket is not None:
            try:
                self._socket.sendall(REQUEST.pack(REQUEST_MAGIC, 0, CMD_DISC, 0, 0, 0))
            except OSError:
                pass
            self._socket.close()
            self._socket = None
        if self._process is not None:
            if stop and self._process.poll() is None:
                self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process.stderr.close()
            self._process = None
        shutil.rmtree(self._directory, ignore_errors=True)
