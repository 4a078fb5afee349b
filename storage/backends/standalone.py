"""Standalone image storage: content-addressed chunks ("image slices", seed 003) in a directory.

Layout under the mount path:

    chunks/ab/<name>       one file per distinct chunk, named by a hash of its bytes (chunknames.py:
                           BLAKE3, or SHA256 in a store made before BLAKE3 and not yet converted)
    manifests/<key>.json   one per replica: size, MD5, SHA256, chunk size and the chunk list
                           (null for an all-zero chunk, which is a hole: never written)
    exports/<key>          exported images: complete files, served as they are (sendfile)
    tmp/                   files being written, linked or renamed into place once complete
    journals/<key>.jsonl   the chunks a writer of `key` created, until the replica is settled (ready)
                           or deleted: what a killed writer wrote can be removed without a grace period
    .gc.lock               flock(2): writers hold it shared while they claim a chunk, cleanup exclusively

A chunk is written to tmp/ and hard-linked to its name, so a reader never sees half a chunk and two
writers of the same chunk cannot replace each other's file. Writers claim a chunk that already exists
by setting its mtime under the shared lock; cleanup (under the exclusive lock) deletes only unreferenced
chunks older than its grace period, so a chunk an ingest in flight relies on is never removed.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import json
import mmap
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager, suppress
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from imageconsole.core.words import gettext as _
from imageconsole.core.words import os_reason

from . import chunknames, hashstate, lanes
from .base import (
    Cancelled,
    CleanupResult,
    ConversionResult,
    IngestResult,
    ReplicaNotFound,
    ReplicaWriter,
    StorageBackend,
    StorageError,
    StorageFull,
    Throttled,
    Usage,
    _cancelled_message,
    disk_full_message,
    ordered_map,
    reserve_message,
)

KiB = 1024
MiB = 1024 * KiB

# 4 MiB, by measurement on these machines (ingest of 1 GiB of random data from the page cache, ext4,
# chunks fsynced, 2 CPUs): 1 MiB chunks reach 456 MB/s at concurrency 4, 4 MiB 480 MB/s, 16 MiB 440 MB/s,
# 64 MiB 383-412 MB/s (fewer chunks than threads keep the pool busy, and each fsync waits longer). The CPU
# (MD5 + SHA256 of the file + SHA256 of each chunk) is the limit above 1 MiB, so the size is chosen for
# deduplication and memory: a changed 4 KiB block costs one 4 MiB chunk, and a writer holds at most
# concurrency + 2 chunks in memory (40 MiB at concurrency 8).
CHUNK_SIZE = 4 * MiB
# Granularity of hole detection inside a chunk: the qcow2 cluster size, so the zero clusters of raw
# images and the unallocated regions of copies stay sparse.
SPARSE_BLOCK = 64 * KiB
# Chunks a writer has in flight (being stored and hashed) at most, each in a 4 MiB buffer of its own: the
# hashing of one stream is serial, so more only hold memory (a 1 GiB upload at upload concurrency 4 took
# as long with 4 as with 6, in 8 MiB less).
MAX_IN_FLIGHT = 4
# The whole-file MD5 and SHA256 take the bytes a chunk buffer receives in pieces of this size, not the
# chunk at once: the MD5 thread (the slowest part of an import) starts a millisecond after the first
# byte instead of a chunk later, which a tus upload sent in PATCHes pays on every PATCH.
HASH_PIECE = 1024 * 1024
_ZERO_BLOCK = bytes(SPARSE_BLOCK)

# Whole chunks are written with O_DIRECT: the bytes go from the writer's page-aligned buffer to the disk,
# not through the page cache. Measured on this project's machine kind (ext4 on virtio, 1 GiB in 4 MiB
# writes, fdatasync at the end): buffered 276-429 MB/s with 1.9-3.3 s of CPU in the kernel, direct
# 670-916 MB/s with 0.4-0.6 s. The CPU is what an import shares with its hashing. Short chunks (an image's
# last, a checkpoint's tail) and file systems without O_DIRECT (ramfs, some FUSE and network file systems)
# are written through the cache.
DIRECT_ALIGN = 4096
_O_DIRECT = getattr(os, "O_DIRECT", 0)

MANIFEST_FORMAT = "imageconsole-chunks-1"
TMP_MIN_AGE_SECONDS = 3600
_FORBIDDEN_ROOTS = ("/dev", "/proc", "/sys", "/usr/bin", "/bin")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def check_mount_path(value: str, *, local: bool = True) -> Path:
    """The mount path as a Path, or StorageError saying why it cannot be used.

    Refused: relative paths, `/`, and system directories (/dev, /proc, /sys, /usr/bin, /bin) or
    anything under them, also when reached through a symbolic link (of this machine's file system
    when `local`; a storage server resolves its own links and checks them the same way).
    """
    if not value or not os.path.isabs(value):
        raise StorageError(_("The mount path must be an absolute path, such as /data/images."))
    normalized = os.path.normpath(value)
    for candidate in {normalized, os.path.realpath(normalized) if local else normalized}:
        if candidate == "/":
            raise StorageError(
                _("The root directory / cannot be a mount path: choose a directory of its own.")
            )
        for root in _FORBIDDEN_ROOTS:
            if candidate == root or candidate.startswith(root + "/"):
                raise StorageError(
                    _("%(path)s is inside the system directory %(root)s; choose a directory of its own.")
                    % {"path": value, "root": root}
                )
    return Path(normalized)


def check_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or len(key) > 200
        or any(not part or part[0] == "." or not set(part) <= _KEY_CHARS for part in parts)
    ):
        raise ValueError(f"invalid replica key: {key!r}")
    return key


def nonzero_runs(data: memoryview) -> list[tuple[int, int]]:
    """(start, end) of the regions of `data` that are not all zero, at SPARSE_BLOCK granularity."""
    runs = []
    start = None
    size = len(data)
    for offset in range(0, size, SPARSE_BLOCK):
        block = data[offset : offset + SPARSE_BLOCK]
        if _ZERO_BLOCK.startswith(block):
            if start is not None:
                runs.append((start, offset))
                start = None
        elif start is None:
            start = offset
    if start is not None:
        runs.append((start, size))
    return runs


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


def aligned_buffer(size: int, kind: type[mmap.mmap] = mmap.mmap) -> mmap.mmap:
    """A zeroed, page-aligned buffer: what an O_DIRECT write can take without a copy."""
    return kind(-1, size)


class HandedBuffer(mmap.mmap):
    """A page-aligned buffer whose bytes go to a chunk writer with the buffer itself: a producer that
    fills one whole (a URL fetch reading the socket into it) and writes a view of all of it gives it
    away, and the writer stores it as a chunk without copying it, then gives it back (take_buffer)."""


# Chunk buffers a closed writer left, for the next writer of this process: a fresh 4 MiB mapping costs a
# thousand page faults at its first fill, and a tus upload sent in PATCHes to several processes opens a
# writer for each PATCH (about 5 ms of a 16 MiB PATCH's 40, measured). Handed buffers come back as soon as
# their chunk is stored, to the fetch that fills the next ones.
_free_buffers: dict[tuple[type, int], list[mmap.mmap]] = {}
_free_mutex = threading.Lock()
FREE_BUFFERS_KEPT = MAX_IN_FLIGHT + 2  # per kind and chunk size: what one writer uses at most
HANDED_KEPT = 16  # a fetch's queue and a writer's chunks in flight


def _buffers_after_fork_in_child() -> None:
    # A forked child (an RQ work horse) may have been forked while another thread held the mutex.
    global _free_mutex
    _free_mutex = threading.Lock()
    _free_buffers.clear()


os.register_at_fork(after_in_child=_buffers_after_fork_in_child)


def take_buffer(size: int, kind: type[mmap.mmap] = mmap.mmap) -> mmap.mmap:
    """A page-aligned buffer of `size` bytes (not zeroed when it was used before)."""
    with _free_mutex:
        free = _free_buffers.get((kind, size))
        if free:
            return free.pop()
    return aligned_buffer(size, kind)


def give_back_buffers(buffers: Iterable[mmap.mmap | None]) -> None:
    """Buffers nothing reads or writes any more, for `take_buffer`."""
    with _free_mutex:
        for buffer in buffers:
            if buffer is None:
                continue
            kind = type(buffer)
            free = _free_buffers.setdefault((kind, len(buffer)), [])
            if len(free) < (HANDED_KEPT if kind is HandedBuffer else FREE_BUFFERS_KEPT):
                free.append(buffer)


def _write_sparse(fd: int, data: memoryview, offset: int, runs: list[tuple[int, int]] | None = None) -> None:
    """Write `data` at `offset`, leaving its all-zero blocks as holes (the file must be sized first)."""
    for start, end in nonzero_runs(data) if runs is None else runs:
        _pwrite_all(fd, data[start:end], offset + start)


def write_sparse_copy(
    path: str | Path, *, size: int, parts: Iterable, read_part: Callable, concurrency: int
) -> None:
    """Write a complete sparse copy at `path`: `read_part(part)` returns `(offset, bytes)` or None for a
    hole; parts are read `concurrency` at a time. The file appears under its name only when complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.ftruncate(fd, size)

        def place(part) -> None:
            placed = read_part(part)
            if placed is not None:
                offset, data = placed
                _write_sparse(fd, memoryview(data), offset)

        for _done in ordered_map(place, parts, concurrency=concurrency):
            pass
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    done = len(data)
    while done < length:
        more = os.pread(fd, length - done, offset + done)
        if not more:
            raise StorageError(_("A chunk file is shorter than its manifest says; the storage is damaged."))
        parts.append(more)
        done += len(more)
    return b"".join(parts)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


class StandaloneBackend(StorageBackend):
    chunk_size = CHUNK_SIZE

    def __init__(self, storage):
        super().__init__(storage)
        self.root = Path(storage.mount_path)
        self.chunks_dir = self.root / "chunks"
        self.manifests_dir = self.root / "manifests"
        self.tmp_dir = self.root / "tmp"
        self.journals_dir = self.root / "journals"
        self.exports_dir = self.root / "exports"
        self.lock_path = self.root / ".gc.lock"
        # Chunk files are fsynced before they are linked into place: a content-addressed store trusts
        # an existing chunk forever, so one left truncated by a crash would corrupt every image using it.
        self.fsync = getattr(settings, "STORAGE_FSYNC", True)
        self.direct = bool(_O_DIRECT) and getattr(settings, "STORAGE_DIRECT_IO", True)
        self._layout_ready = False

    # Layout and locking
    def ensure_layout(self) -> None:
        if self._layout_ready:
            return
        check_mount_path(str(self.root))
        if self._layout_complete():
            self._layout_ready = True  # (each request has a backend of its own: 5 stats, not 262 mkdirs)
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.manifests_dir.mkdir(exist_ok=True)
            self.tmp_dir.mkdir(exist_ok=True)
            self.journals_dir.mkdir(exist_ok=True)
            self.exports_dir.mkdir(exist_ok=True)
            self.chunks_dir.mkdir(exist_ok=True)
            for prefix in range(256):
                (self.chunks_dir / f"{prefix:02x}").mkdir(exist_ok=True)
            self.lock_path.touch(exist_ok=True)
        except OSError as error:
            raise StorageError(
                _("Cannot prepare %(path)s: %(reason)s.") % {"path": self.root, "reason": os_reason(error)}
            ) from error
        self._layout_ready = True

    def _layout_complete(self) -> bool:
        return (
            self.lock_path.exists()
            and all(
                os.path.isdir(path)
                for path in (self.manifests_dir, self.tmp_dir, self.journals_dir, self.exports_dir)
            )
            and os.path.isdir(self.chunks_dir / "ff")
        )  # the last directory ensure_layout creates

    @contextmanager
    def _lock(self, *, exclusive: bool = False):
        # One open file description per holder: flock locks belong to it, so threads do not share a lock.
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @property
    def chunk_names(self) -> str:
        """The scheme that names the chunks this store's writers create (chunknames.py)."""
        return self.storage.chunk_names

    def chunk_path(self, digest: str) -> Path:
        return self.chunks_dir / digest[:2] / digest

    def manifest_path(self, key: str) -> Path:
        return self.manifests_dir / f"{check_key(key)}.json"

    def _tmp_file(self, suffix: str) -> Path:
        return self.tmp_dir / f"{uuid.uuid4().hex}.{suffix}"

    # Capacity
    def _statvfs(self):
        try:
            return os.statvfs(self.root)
        except OSError as error:
            raise StorageError(
                _("Cannot read the mount path %(path)s: %(reason)s.")
                % {"path": self.root, "reason": os_reason(error)}
            ) from error

    def free_bytes(self) -> int:
        stat = self._statvfs()
        return stat.f_bavail * stat.f_frsize

    def usage(self) -> Usage:
        stat = self._statvfs()
        used = 0
        counted: set[int] = set()  # a file with two names (a converted chunk's) counts once
        for directory in (self.chunks_dir, self.manifests_dir, self.exports_dir):
            for path in _walk_files(directory):
                with suppress(FileNotFoundError):
                    file = path.stat()
                    if file.st_nlink > 1:
                        if file.st_ino in counted:
                            continue
                        counted.add(file.st_ino)
                    used += file.st_blocks * 512
        logical = 0
        for _key, manifest in self._manifests():
            logical += manifest["size"]
        return Usage(
            total=stat.f_blocks * stat.f_frsize,
            used=used,
            free=stat.f_bavail * stat.f_frsize,
            logical=logical,
            dedup_ratio=(logical / used) if used else 1.0,
        )

    def _ensure_room(self, nbytes: int) -> None:
        free = self.free_bytes()
        if free - nbytes < self.storage.reserved_bytes:
            raise StorageFull(reserve_message(self.storage, free=free, nbytes=nbytes))

    # Chunks
    def _claim(self, path: Path) -> bool:
        """Mark an existing chunk as in use now; False when there is no such chunk."""
        now = time.time_ns()
        with self._lock():
            try:
                os.utime(path, ns=(now, now))
            except FileNotFoundError:
                return False
        return True

    def _write_chunk_file(self, tmp: Path, data: memoryview, runs, *, aligned: bool) -> int:
        """Create `tmp` holding `data` (holes where `runs` leave them); returns its open descriptor.
        `aligned`: `data` starts on a page (aligned_buffer), so whole chunks may go around the page cache."""
        direct = self.direct and aligned and len(data) % DIRECT_ALIGN == 0
        fd = -1
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | (_O_DIRECT if direct else 0), 0o644)
            os.ftruncate(fd, len(data))
            _write_sparse(fd, data, 0, runs)
        except OSError as error:
            if fd >= 0:
                os.close(fd)
            if not direct or error.errno != errno.EINVAL:
                raise
            # The file system takes no O_DIRECT (ramfs, some FUSE and network file systems): the cache.
            self.direct = False
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            return self._write_chunk_file(tmp, data, runs, aligned=False)
        return fd

    def put_chunk(
        self,
        digest: str,
        data: memoryview,
        runs: list[tuple[int, int]],
        *,
        owner: str = "",
        note=None,
        aligned: bool = False,
    ) -> tuple | None:
        """Store a chunk unless it exists. Returns (path, inode, mtime) when this call created it.
        `owner` (a replica key) names the temporary file, so that deleting the key finds it after a kill."""
        path = self.chunk_path(digest)
        if self._claim(path):
            return None
        self._ensure_room(len(data))
        tmp = self.tmp_dir / f"{owner}~{uuid.uuid4().hex}.chunk" if owner else self._tmp_file("chunk")
        try:
            fd = self._write_chunk_file(tmp, data, runs, aligned=aligned)
            try:
                if self.fsync:
                    os.fsync(fd)
                stat = os.fstat(fd)
            finally:
                os.close(fd)
            if note is not None:
                note(
                    (path, stat.st_ino, stat.st_mtime_ns)
                )  # journaled before it exists: a kill leaks nothing
            with self._lock():
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    now = time.time_ns()
                    os.utime(path, ns=(now, now))
                    return None
            return (path, stat.st_ino, stat.st_mtime_ns)
        except OSError as error:
            if _is_full(error):
                raise StorageFull(disk_full_message(self.storage)) from error
            raise StorageError(
                _("Cannot write to %(path)s: %(reason)s.") % {"path": self.root, "reason": os_reason(error)}
            ) from error
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp)

    def remove_created(self, created: list[tuple]) -> int:
        """Remove chunks a failed write created, unless another writer has claimed them since (a claim
        sets a chunk's mtime past the last time its creator touched it). Returns the bytes freed."""
        if not created:
            return 0
        freed = 0
        with self._lock(exclusive=True):
            for path, inode, mtime in created:
                with suppress(FileNotFoundError):
                    stat = os.stat(path)
                    if stat.st_ino == inode and stat.st_mtime_ns <= mtime:
                        os.unlink(path)
                        freed += stat.st_blocks * 512
        return freed

    # Journals: the chunks each unsettled replica's writer created
    def journal_path(self, key: str) -> Path:
        return self.journals_dir / f"{check_key(key)}.jsonl"

    def _journal_entries(self, path: Path) -> list[tuple]:
        entries: dict[str, tuple] = {}
        try:
            with open(path) as file:
                for line in file:
                    try:
                        chunk, inode, mtime = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a kill
                    entries[chunk] = (str(self.root / chunk), inode, mtime)
        except FileNotFoundError:
            return []
        return list(entries.values())

    def discard_journal(self, key: str) -> int:
        """Remove the chunks the writers of `key` created that nobody has claimed since; bytes freed."""
        path = self.journal_path(key)
        freed = self.remove_created(self._journal_entries(path))
        with suppress(FileNotFoundError):
            path.unlink()
        return freed

    def settle(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.journal_path(key).unlink()

    # Manifests
    def load_manifest(self, key: str) -> dict:
        try:
            with open(self.manifest_path(key), "rb") as file:
                manifest = json.load(file)
        except FileNotFoundError:
            raise ReplicaNotFound(
                _("Replica %(key)s is not on storage “%(name)s”.") % {"key": key, "name": self.storage.name}
            ) from None
        if manifest.get("format") != MANIFEST_FORMAT:
            raise StorageError(_("The manifest of %(key)s has an unknown format.") % {"key": key})
        return manifest

    def write_manifest(self, key: str, manifest: dict, *, verified: int = 0) -> None:
        """Publish a replica, after checking under the lock that every chunk it names is there (but the
        first `verified`, which a manifest still published names: a data cleanup keeps them)."""
        path = self.manifest_path(key)
        tmp = self._tmp_file("manifest")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as file:
                json.dump(manifest, file, separators=(",", ":"))
                file.flush()
                if self.fsync:
                    os.fsync(file.fileno())
            with self._lock():
                for digest in {digest for digest in manifest["chunks"][verified:] if digest}:
                    if not self.chunk_path(digest).exists():
                        raise StorageError(
                            _(
                                "A chunk of %(key)s was removed by a data cleanup while it was written (the "
                                "write took longer than the cleanup grace period). Store it again."
                            )
                            % {"key": key}
                        )
                os.replace(tmp, path)
            if self.fsync:
                _fsync_dir(path.parent)
        except OSError as error:
            if _is_full(error):
                raise StorageFull(disk_full_message(self.storage)) from error
            raise StorageError(
                _("Cannot write to %(path)s: %(reason)s.") % {"path": self.root, "reason": os_reason(error)}
            ) from error
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()

    def _manifests(self) -> Iterator[tuple[str, dict]]:
        for path in _walk_files(self.manifests_dir):
            if path.suffix != ".json":
                continue
            try:
                with open(path, "rb") as file:
                    manifest = json.load(file)
            except (FileNotFoundError, ValueError):
                continue
            yield str(path.relative_to(self.manifests_dir))[: -len(".json")], manifest

    # The interface
    def open_writer(self, key: str, *, expected_size: int | None = None) -> ChunkWriter:
        check_key(key)
        self.ensure_layout()
        self.check_capacity(expected_size or 0)
        return ChunkWriter(self, key)

    def resume_writer(
        self, previous_key: str, key: str, state: dict, *, expected_size: int | None = None
    ) -> ChunkWriter | None:
        """The complete chunks are the manifest's, the hashes the state's; only a partly filled last chunk
        (shorter than the chunk size, none when every request ended on a chunk boundary) is read back."""
        try:
            hashers = hashstate.restore_all(
                {name: base64.b64decode(value) for name, value in state["hashes"].items()}
            )
            complete = int(state["complete"])
            hashed = int(state.get("hashed", complete))  # (a state kept before the hashes took the tail)
        except (KeyError, TypeError, ValueError):
            return None
        if set(hashers) != {"md5", "sha256"}:
            return None
        manifest = self.load_manifest(previous_key)
        if (
            manifest["chunk_size"] != self.chunk_size
            or complete % self.chunk_size
            or complete > manifest["size"]
            or hashed not in (complete, manifest["size"])
        ):
            return None
        check_key(key)
        self.ensure_layout()
        self.check_capacity(max((expected_size or 0) - manifest["size"], 0))
        writer = ChunkWriter(self, key)
        writer._md5, writer._sha256 = hashers["md5"], hashers["sha256"]
        writer._digests = list(manifest["chunks"][: complete // self.chunk_size])
        writer._verified = len(writer._digests)  # `previous_key` names them until this writer publishes
        writer._size = complete
        writer._journal_key = previous_key  # chunks it creates join the journal of the stream so far
        tail = manifest["size"] - complete
        if tail:
            digest = manifest["chunks"][complete // self.chunk_size]
            data = self._read_chunk(digest, tail) if digest else bytes(tail)
            writer.bytes_read_back = tail
            writer._buffer[:tail] = data
            writer._filled = tail
            writer._hashed_to = hashed - complete
        return writer

    def size(self, key: str) -> int:
        return self.load_manifest(key)["size"]

    def exists(self, key: str) -> bool:
        return self.manifest_path(key).exists()

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        manifest = self.load_manifest(key)
        size = manifest["size"]
        end = size if end is None else min(end, size)
        if start < 0 or start > end:
            raise ValueError(f"invalid range {start}-{end} of a {size}-byte replica")
        chunk_size = manifest["chunk_size"]
        chunks = manifest["chunks"]

        def pieces():
            for index in range(start // chunk_size, -(-end // chunk_size)):
                base = index * chunk_size
                yield chunks[index], max(start, base) - base, min(end, base + chunk_size) - base

        def fetch(piece) -> bytes:
            digest, low, high = piece
            if digest is None:
                return bytes(high - low)
            return self._read_chunk(digest, high - low, low)

        return ordered_map(fetch, pieces(), concurrency=self.storage.download_concurrency)

    def _read_chunk(self, digest: str, length: int, offset: int = 0) -> bytes:
        try:
            fd = os.open(self.chunk_path(digest), os.O_RDONLY)
        except FileNotFoundError:
            raise StorageError(
                _("Chunk %(digest)s is missing from storage “%(name)s”; the replica is damaged.")
                % {"digest": digest, "name": self.storage.name}
            ) from None
        try:
            return _pread_all(fd, length, offset)
        finally:
            os.close(fd)

    def copy_to_path(self, key: str, path: str | Path) -> None:
        manifest = self.load_manifest(key)
        chunk_size = manifest["chunk_size"]
        size = manifest["size"]

        def read_part(item):
            index, digest = item
            if digest is None:
                return None
            offset = index * chunk_size
            return offset, self._read_chunk(digest, min(chunk_size, size - offset))

        write_sparse_copy(
            path,
            size=size,
            parts=enumerate(manifest["chunks"]),
            read_part=read_part,
            concurrency=self.storage.download_concurrency,
        )

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.manifest_path(key).unlink()
        # An unsettled replica (an import that failed, or whose worker was killed): its own chunks go now,
        # and the chunk a killed writer was writing.
        self.discard_journal(key)
        for path in self.tmp_dir.glob(f"{check_key(key)}~*.chunk"):
            with suppress(FileNotFoundError):
                path.unlink()

    def copy_to(self, key, target, *, progress=None, should_cancel=None) -> IngestResult:
        if not isinstance(target, StandaloneBackend):
            return super().copy_to(key, target, progress=progress, should_cancel=should_cancel)
        return _sync_chunks(self, key, target, progress=progress, should_cancel=should_cancel)

    # Exports
    def _export_file(self, key: str) -> Path:
        return self.exports_dir / check_key(key)

    def export_put(self, key, source, *, progress=None, should_cancel=None) -> int:
        source = Path(source)
        target = self._export_file(key)
        try:
            self.ensure_layout()
            size = source.stat().st_size
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # Same filesystem (staging beside the storage): the file moves without a copy.
                os.rename(source, target)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                self.check_capacity(size)
                _copy_sparse(
                    source,
                    target,
                    tmp=self._tmp_file("export"),
                    progress=progress,
                    should_cancel=should_cancel,
                    fsync=self.fsync,
                )
        except StorageFull:
            with suppress(FileNotFoundError):
                target.unlink()
            raise
        except OSError as error:
            with suppress(FileNotFoundError):
                target.unlink()
            if _is_full(error):
                raise StorageFull(disk_full_message(self.storage)) from error
            raise StorageError(
                _("Cannot write to %(path)s: %(reason)s.") % {"path": self.root, "reason": os_reason(error)}
            ) from error
        finally:
            with suppress(FileNotFoundError):
                source.unlink()
        return size

    def export_size(self, key: str) -> int:
        try:
            return self._export_file(key).stat().st_size
        except FileNotFoundError:
            raise ReplicaNotFound(
                _("Export %(key)s is not on storage “%(name)s”.") % {"key": key, "name": self.storage.name}
            ) from None

    def export_path(self, key: str) -> Path:
        return self._export_file(key)

    def export_read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        size = self.export_size(key)
        end = size if end is None else min(end, size)
        path = self._export_file(key)

        def blocks():
            fd = os.open(path, os.O_RDONLY)
            try:
                offset = start
                while offset < end:
                    data = os.pread(fd, min(CHUNK_SIZE, end - offset), offset)
                    if not data:
                        raise StorageError(_("Export %(key)s is shorter than it was.") % {"key": key})
                    offset += len(data)
                    yield data
            finally:
                os.close(fd)

        return blocks()

    def export_delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self._export_file(key).unlink()

    def test_connection(self) -> None:
        self._layout_ready = False
        self.ensure_layout()
        probe = self._tmp_file("probe")
        payload = uuid.uuid4().bytes
        try:
            with open(probe, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            if probe.read_bytes() != payload:
                raise StorageError(_("What was written to %(path)s did not read back.") % {"path": self.root})
        except OSError as error:
            raise StorageError(
                _("Cannot write to %(path)s: %(reason)s.") % {"path": self.root, "reason": os_reason(error)}
            ) from error
        finally:
            with suppress(OSError):  # (not there; on a read-only file system that too is EROFS)
                probe.unlink()

    # Converting chunk names (SHA256 to BLAKE3)
    def link_chunks(self, pairs: list[tuple[str, str]]) -> None:
        """Give each chunk `old` the second name `new` (a hard link: no byte is copied), or claim `new`
        when it exists already, so that no cleanup removes it before a manifest names it."""
        with self._lock():
            for old, new in pairs:
                target = self.chunk_path(new)
                try:
                    os.link(self.chunk_path(old), target)
                except FileExistsError:
                    now = time.time_ns()
                    os.utime(target, ns=(now, now))

    def replace_manifest(self, key: str, expected: dict, manifest: dict) -> bool:
        """Publish `manifest` for `key` if its manifest is still `expected` (a writer may have published a
        newer one meanwhile: a resumable upload checkpoints hers). Returns whether it was replaced."""
        path = self.manifest_path(key)
        tmp = self._tmp_file("manifest")
        try:
            with open(tmp, "w") as file:
                json.dump(manifest, file, separators=(",", ":"))
                file.flush()
                if self.fsync:
                    os.fsync(file.fileno())
            with self._lock(exclusive=True):
                try:
                    with open(path, "rb") as file:
                        current = json.load(file)
                except (FileNotFoundError, ValueError):
                    return False
                if current != expected:
                    return False
                os.replace(tmp, path)
            if self.fsync:
                _fsync_dir(path.parent)
            return True
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()

    def convert_chunk_names(self, *, progress: Callable[[str], None] | None = None) -> ConversionResult:
        """Name every chunk a manifest lists by SHA256 by its BLAKE3 as well and rewrite the manifests with
        the new names; each chunk is read once and checked against its old name on the way. Unreferenced
        old names go with the next data cleanup (the bytes stay: both names are one file)."""
        self.ensure_layout()
        renamed: dict[str, str] = {}
        result = ConversionResult()
        for key, manifest in list(self._manifests()):
            if manifest.get("format") != MANIFEST_FORMAT:
                continue
            chunk_size, size, chunks = manifest["chunk_size"], manifest["size"], manifest["chunks"]
            pairs = {}  # every old name of this manifest: one renamed for an earlier one is claimed again
            for index, name in enumerate(chunks):
                if not name or chunknames.scheme_of(name) != chunknames.SHA256 or name in pairs:
                    continue
                if name in renamed:
                    pairs[name] = renamed[name]
                    continue
                data = self._read_chunk(name, min(chunk_size, size - index * chunk_size))
                if not chunknames.matches(name, data):
                    raise StorageError(
                        _(
                            "Chunk %(digest)s on storage “%(name)s” does not match its name; the storage is damaged."
                        )
                        % {"digest": name, "name": self.storage.name}
                    )
                renamed[name] = pairs[name] = chunknames.name_of(data, chunknames.BLAKE3)
                result.chunks += 1
                result.bytes_read += len(data)
            if not pairs:
                continue
            self.link_chunks(list(pairs.items()))
            converted = dict(manifest, chunks=[renamed.get(name, name) if name else name for name in chunks])
            if self.replace_manifest(key, manifest, converted):
                result.replicas += 1
            else:
                result.changed.append(key)
            if progress is not None:
                progress(key)
        return result

    def cleanup(self, *, referenced_keys: set[str], grace_seconds: float) -> CleanupResult:
        self.ensure_layout()
        cutoff_ns = time.time_ns() - int(grace_seconds * 1e9)
        freed = replicas = blobs = 0
        with self._lock(exclusive=True):
            live: set[str] = set()
            for key, manifest in list(self._manifests()):
                path = self.manifests_dir / f"{key}.json"
                if key not in referenced_keys:
                    with suppress(FileNotFoundError):
                        stat = path.stat()
                        if stat.st_mtime_ns < cutoff_ns:
                            path.unlink()
                            freed += stat.st_blocks * 512
                            replicas += 1
                            continue
                live.update(digest for digest in manifest["chunks"] if digest)
            # Journals past the grace period: a settled replica's is dropped, an abandoned one's chunks go
            # with the unreferenced chunks below.
            for path in _walk_files(self.journals_dir):
                with suppress(FileNotFoundError):
                    if path.stat().st_mtime_ns < cutoff_ns:
                        path.unlink()
            # A temporary file is in use while its writer runs, whatever grace the caller asked for.
            tmp_cutoff_ns = min(cutoff_ns, time.time_ns() - TMP_MIN_AGE_SECONDS * 10**9)
            for directory, keep, cutoff in (
                (self.chunks_dir, live, cutoff_ns),
                (self.tmp_dir, (), tmp_cutoff_ns),
            ):
                for path in _walk_files(directory):
                    if path.name in keep:
                        continue
                    with suppress(FileNotFoundError):
                        stat = path.stat()
                        if stat.st_mtime_ns < cutoff:
                            path.unlink()
                            if stat.st_nlink == 1:  # else the bytes stay under its other name
                                freed += stat.st_blocks * 512
                            blobs += 1
        return CleanupResult(bytes_freed=freed, replicas_removed=replicas, blobs_removed=blobs)


def _copy_sparse(source: Path, target: Path, *, tmp: Path, progress, should_cancel, fsync: bool) -> None:
    """Copy a file across filesystems, leaving its all-zero blocks as holes; it appears when complete."""
    report = Throttled(progress)
    done = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(source, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            os.ftruncate(fd, size)
            while block := file.read(CHUNK_SIZE):
                if should_cancel is not None and should_cancel():
                    raise Cancelled(_cancelled_message())
                _write_sparse(fd, memoryview(block), done)
                done += len(block)
                report(done)
        if fsync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    finally:
        if fd >= 0:
            os.close(fd)
        with suppress(FileNotFoundError):
            tmp.unlink()
    report(done, final=True)


def _walk_files(directory: Path) -> Iterator[Path]:
    stack = [directory]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield Path(entry.path)


class ChunkWriter(ReplicaWriter):
    """Cuts the stream into chunks; chunk hashing and writing run on the storage's upload concurrency
    while the whole-file MD5 and SHA256 run beside them, each on its own thread, in stream order."""

    def __init__(self, backend: StandaloneBackend, key: str):
        self.backend = backend
        self.key = key
        self.chunk_size = backend.chunk_size
        self._names = backend.chunk_names
        concurrency = backend.storage.upload_concurrency
        # MD5 sets the pace; the helpers give way to it (lanes.HELPER_NICE).
        self._lanes = (
            ("chunk-write", concurrency, lanes.HELPER_NICE),
            ("chunk-md5", 1, 0),
            ("chunk-sha256", 1, lanes.HELPER_NICE),
        )
        self._pool, self._md5_thread, self._sha_thread = (lanes.borrow(*lane) for lane in self._lanes)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self._max_in_flight = min(concurrency + 2, MAX_IN_FLIGHT)
        # (store, its MD5 and SHA256 updates, the buffer they read): the buffer is reused once all are done.
        self._in_flight: deque[tuple[Future, list[Future], mmap.mmap | None]] = deque()
        self._hashed_to = 0  # of the buffer: what the MD5 and SHA256 threads were given
        self._piece_hashes: list[Future] = []  # their updates of the buffer so far
        self._digests: list[str | None] = []  # of the chunks stored so far, in stream order (None: zeros)
        # How many of them a manifest published by this stream names (a checkpoint's): the next publish
        # checks only the chunks after them (write_manifest), not every chunk of a long upload again.
        self._verified = 0
        self._buffer = take_buffer(self.chunk_size)
        self._spare: list[mmap.mmap] = []
        self._filled = 0
        self._size = 0
        self._stored = 0
        self._created: list[tuple] = []
        self._mutex = threading.Lock()
        self._closed = False
        self._journal_key = key
        self._journal = None
        self._own: dict[str, list] = {}  # chunk path -> [path, inode, last mtime this writer set]

    @property
    def bytes_written(self) -> int:
        return self._size + self._filled

    def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise StorageError("write() after commit() or abort()")
        view = memoryview(data).cast("B")
        if (
            self._filled == 0
            and isinstance(view.obj, HandedBuffer)
            and len(view) == len(view.obj) == self.chunk_size
        ):
            self._submit(view, view.obj)  # a whole chunk given with its buffer: stored as it is
            return
        immutable = isinstance(data, bytes)
        while view:
            if immutable and not self.backend.direct and self._filled == 0 and len(view) >= self.chunk_size:
                # The caller cannot change a bytes object, so its chunks are used without a copy (unless
                # they go to disk directly, which needs them page-aligned: one copy to memory is cheaper
                # than the page cache's).
                self._submit(view[: self.chunk_size])
                view = view[self.chunk_size :]
                continue
            take = min(self.chunk_size - self._filled, len(view))
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            self._placed()

    @property
    def handed_block_size(self) -> int:
        """The size of a HandedBuffer this writer stores without a copy (see write)."""
        return self.chunk_size

    def write_area(self) -> memoryview | None:
        if self._closed:
            return None
        return memoryview(self._buffer)[self._filled :]

    def wrote(self, n: int) -> None:
        if self._closed:
            raise StorageError("wrote() after commit() or abort()")
        if not 0 <= n <= self.chunk_size - self._filled:
            raise ValueError(f"{n} bytes do not fit in the write area")
        self._filled += n
        self._placed()

    def _placed(self) -> None:
        """Bytes were placed in the buffer: store it when full, else hash what is due."""
        if self._filled == self.chunk_size:
            self._flush_buffer()
        elif self._filled - self._hashed_to >= HASH_PIECE:
            self._hash_piece()

    def _hash_piece(self) -> None:
        """Give the buffer's bytes the hash threads have not had yet to them."""
        piece = memoryview(self._buffer)[self._hashed_to : self._filled]
        self._piece_hashes += self._hash_futures(piece)
        self._hashed_to = self._filled

    def _hash_futures(self, data: memoryview) -> list[Future]:
        return [
            self._md5_thread.submit(self._md5.update, data),
            self._sha_thread.submit(self._sha256.update, data),
        ]

    def _flush_buffer(self) -> None:
        if self._hashed_to < self._filled:
            self._hash_piece()
        buffer, hashes = self._buffer, self._piece_hashes
        chunk = memoryview(buffer)[: self._filled]
        self._buffer = self._spare.pop() if self._spare else take_buffer(self.chunk_size)
        self._filled = self._hashed_to = 0
        self._piece_hashes = []
        self._submit(chunk, buffer, hashes)

    def _submit(self, chunk: memoryview, buffer: mmap.mmap | None = None, hashes: list | None = None) -> None:
        future = self._pool.submit(self._store, chunk, aligned=buffer is not None)
        self._in_flight.append((future, self._hash_futures(chunk) if hashes is None else hashes, buffer))
        self._size += len(chunk)
        while len(self._in_flight) > self._max_in_flight:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait for the oldest chunk in flight (raises its error); its buffer can take new bytes."""
        stored, hashes, buffer = self._in_flight.popleft()
        self._digests.append(stored.result())
        for future in hashes:
            future.result()
        if isinstance(buffer, HandedBuffer):
            give_back_buffers([buffer])  # to the producer that fills the next
        elif buffer is not None:
            self._spare.append(buffer)

    def _store(self, chunk: memoryview, *, aligned: bool = False) -> str | None:
        runs = nonzero_runs(chunk)
        if not runs:
            return None
        digest = chunknames.name_of(chunk, self._names)
        created = self.backend.put_chunk(
            digest, chunk, runs, owner=self._journal_key, note=self._note_locked, aligned=aligned
        )
        if created is not None:
            with self._mutex:
                self._created.append(created)
                self._stored += len(chunk)
                self._own[str(created[0])] = list(created)
        else:
            path = str(self.backend.chunk_path(digest))
            touched = time.time_ns()
            with self._mutex:
                if path in self._own:
                    # This writer claimed a chunk it created (a block repeated in the stream): still its own.
                    self._own[path][2] = touched
                    self._note(tuple(self._own[path]))
        return digest

    def _note_locked(self, entry: tuple) -> None:
        with self._mutex:
            self._note(entry)

    def _note(self, entry: tuple) -> None:
        """Journal a chunk this writer created, before anything references it (under the mutex)."""
        if self._journal is None:
            self._journal = open(self.backend.journal_path(self._journal_key), "a")  # noqa: SIM115
        path, inode, mtime = entry
        relative = os.path.relpath(path, self.backend.root)
        self._journal.write(json.dumps([relative, inode, mtime]) + "\n")
        self._journal.flush()  # in the page cache: it outlives a killed process

    def _journal_to(self, key: str) -> None:
        """The journal follows the replica the writer publishes (a resumed upload's key changes)."""
        with self._mutex:
            if key != self._journal_key:
                if self._journal is not None:
                    self._journal.close()
                    self._journal = None
                with suppress(FileNotFoundError):
                    os.replace(self.backend.journal_path(self._journal_key), self.backend.journal_path(key))
                self._journal_key = key

    def wait(self) -> None:
        """Wait until every complete chunk given so far is stored; raises the first error."""
        while self._in_flight:
            self._settle_oldest()

    def commit(self) -> IngestResult:
        if self._closed:
            raise StorageError("commit() after commit() or abort()")
        if self._filled:
            self._flush_buffer()
        self.wait()
        digests = self._digests
        result = IngestResult(
            key=self.key,
            size=self._size,
            md5=self._md5.hexdigest(),
            sha256=self._sha256.hexdigest(),
            bytes_stored=self._stored,
        )
        self._publish(self.key, result, digests)
        self._journal_to(self.key)
        self._close()
        return result

    can_checkpoint = True

    def checkpoint(self, key: str) -> IngestResult:
        """The complete chunks so far, plus the partly filled one stored as a short last chunk (which the
        stream's later bytes complete in memory: the full chunk is stored when it fills). The returned
        hashes cover every byte written.

        The manifest is published as soon as the chunks are stored, while MD5 and SHA256 still drain
        (the slowest part: a tus PATCH waits for both): a replica still being received carries no
        checksums in it (the receive state keeps the hash midstates; commit() writes the checksums)."""
        if self._closed:
            raise StorageError("checkpoint() after commit() or abort()")
        digests = self._digests + [stored.result() for stored, _hashes, _buffer in self._in_flight]
        complete = len(digests)
        if self._filled:
            digests.append(self._store(memoryview(bytes(self._buffer[: self._filled]))))
        size = self.bytes_written
        self._publish(key, IngestResult(key=key, size=size, md5="", sha256="", bytes_stored=0), digests)
        self._verified = complete  # (the short last chunk is replaced when it fills)
        self.wait()
        while self._piece_hashes:
            self._piece_hashes.pop().result()
        if self._hashed_to < self._filled:
            tail = memoryview(self._buffer)[self._hashed_to : self._filled]
            self._md5.update(tail)
            self._sha256.update(tail)
            self._hashed_to = self._filled
        result = IngestResult(
            key=key,
            size=size,
            md5=self._md5.hexdigest(),
            sha256=self._sha256.hexdigest(),
            bytes_stored=self._stored,
        )
        self._journal_to(key)
        with self._mutex:
            self._created = []  # published: a later abort() leaves these chunks alone
        return result

    def release(self) -> None:
        if not self._closed:
            self._close()

    def resume_state(self) -> dict | None:
        """The hash midstates of every byte written (checkpoint() hashed them all), and where the complete
        chunks end."""
        states = hashstate.export_all({"md5": self._md5, "sha256": self._sha256})
        if states is None:
            return None
        return {
            "complete": self._size,
            "hashed": self.bytes_written,
            "hashes": {name: base64.b64encode(state).decode() for name, state in states.items()},
        }

    def _publish(self, key: str, result: IngestResult, digests: list) -> None:
        self.backend.write_manifest(
            key,
            {
                "format": MANIFEST_FORMAT,
                "key": key,
                "size": result.size,
                "md5": result.md5,
                "sha256": result.sha256,
                "chunk_size": self.chunk_size,
                "chunks": digests,
                "created_at": timezone.now().isoformat(),
            },
            verified=self._verified,
        )

    def abort(self) -> None:
        if self._closed:
            return
        self._close(cancel=True)
        self.backend.remove_created([tuple(self._own.get(str(c[0]), c)) for c in self._created])
        if not self._own or len(self._created) == len(self._own):
            # Nothing of this writer was published: its journal has served.
            with suppress(FileNotFoundError):
                self.backend.journal_path(self._journal_key).unlink()

    def _close(self, *, cancel: bool = False) -> None:
        self._closed = True
        futures = [future for stored, hashes, _buffer in self._in_flight for future in (stored, *hashes)]
        futures += self._piece_hashes
        self._piece_hashes = []
        if cancel:
            for future in futures:
                future.cancel()
        wait_futures(futures)  # then no thread touches the buffers, and the lanes are idle
        for pool, lane in zip((self._pool, self._md5_thread, self._sha_thread), self._lanes, strict=True):
            lanes.give_back(pool, *lane)
        give_back_buffers([self._buffer, *self._spare, *(entry[-1] for entry in self._in_flight)])
        self._buffer, self._spare = None, []
        self._in_flight.clear()
        with self._mutex:
            self._close_journal()

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _sync_chunks(
    source: StandaloneBackend, key: str, target: StandaloneBackend, *, progress, should_cancel
) -> IngestResult:
    """Standalone to standalone: copy the chunks the target lacks (verified on the way), then the manifest."""
    manifest = source.load_manifest(key)
    target.ensure_layout()
    chunk_size = manifest["chunk_size"]
    digests = list(dict.fromkeys(digest for digest in manifest["chunks"] if digest))
    missing = [digest for digest in digests if not target._claim(target.chunk_path(digest))]
    lengths = {}
    for index, digest in enumerate(manifest["chunks"]):
        if digest:
            lengths[digest] = min(chunk_size, manifest["size"] - index * chunk_size)
    target.check_capacity(sum(lengths[digest] for digest in missing))
    report = Throttled(progress)
    created: list[tuple] = []
    stored = 0
    done = manifest["size"] - sum(lengths[digest] for digest in missing)

    def copy(digest: str) -> tuple[int, tuple | None]:
        data = memoryview(source._read_chunk(digest, lengths[digest]))
        if not chunknames.matches(digest, data):
            raise StorageError(
                _("Chunk %(digest)s on storage “%(name)s” does not match its name; the source is damaged.")
                % {"digest": digest, "name": source.storage.name}
            )
        return len(data), target.put_chunk(digest, data, nonzero_runs(data))

    try:
        concurrency = max(source.storage.download_concurrency, target.storage.upload_concurrency)
        for length, record in ordered_map(copy, missing, concurrency=concurrency):
            if record is not None:
                created.append(record)
                stored += length
            done += length
            report(done)
            if should_cancel is not None and should_cancel():
                raise Cancelled(_cancelled_message())
        target.write_manifest(key, dict(manifest, created_at=timezone.now().isoformat()))
    except BaseException:
        target.remove_created(created)
        raise
    report(manifest["size"], final=True)
    return IngestResult(
        key=key, size=manifest["size"], md5=manifest["md5"], sha256=manifest["sha256"], bytes_stored=stored
    )
