"""The one interface every image storage backend implements; `get_backend(storage)` picks by kind.

Callers (the import pipeline, downloads, sync and migrate) use only what is declared here.
"""

from __future__ import annotations

import abc
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO, TypeVar

MiB = 1024 * 1024
# Size of the reads `ingest` makes from its source and of the blocks streamed between storages.
READ_BLOCK = 4 * MiB


class StorageError(Exception):
    """A storage operation failed; the message is meant for a person and says what to do."""


class StorageFull(StorageError):
    """Writing would leave less than the storage's reserved capacity (or the disk is full)."""


class Cancelled(StorageError):
    """The caller's `should_cancel` answered True; everything written by the call was removed."""


class ReplicaNotFound(StorageError):
    """No replica is stored under the key."""


@dataclass(frozen=True)
class IngestResult:
    key: str
    size: int
    md5: str
    sha256: str
    # Bytes this call physically wrote: new chunks only on a standalone storage (identical chunks are
    # stored once), the whole object on S3, nothing for a server-side copy.
    bytes_stored: int = 0


@dataclass
class ConversionResult:
    """What converting a store's chunk names did: replicas rewritten, distinct chunks renamed and the bytes
    read to name them; `changed`: replicas a writer published anew meanwhile (converted by a later run)."""

    replicas: int = 0
    chunks: int = 0
    bytes_read: int = 0
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CleanupResult:
    bytes_freed: int = 0
    replicas_removed: int = 0  # manifests (standalone) or objects (S3) no replica references
    blobs_removed: int = 0  # chunks no manifest references, abandoned temporary files and uploads


@dataclass(frozen=True)
class Usage:
    total: int  # bytes the storage can hold (filesystem size, or the configured capacity for S3)
    used: int  # bytes physically used by stored data
    free: int  # bytes still available
    logical: int  # sum of the sizes of every stored replica, before deduplication
    dedup_ratio: float  # logical / used (1.0 when nothing is shared)

    @property
    def usable(self) -> int:
        return self.free


ProgressCallback = Callable[[int], None]  # called with the bytes done so far, at most about once a second
CancelCheck = Callable[[], bool]

T = TypeVar("T")
R = TypeVar("R")


class Throttled:
    """Calls `progress` with the bytes done at most once a second, and always with the final count."""

    def __init__(self, progress: ProgressCallback | None, interval: float = 1.0):
        self.progress = progress
        self.interval = interval
        self._last = 0.0

    def __call__(self, done: int, *, final: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if final or now - self._last >= self.interval:
            self._last = now
            self.progress(done)


def ordered_map(func: Callable[[T], R], items: Iterable[T], *, concurrency: int) -> Iterator[R]:
    """func(item) for every item, results in order, with up to `concurrency` calls running at once.

    At most `concurrency` results are held ahead of the consumer, so memory stays bounded; closing the
    iterator early cancels what has not started. A single item (a range within one chunk: a qcow2
    table the finish reads) runs on the calling thread: starting a pool's thread cost more than it.
    """
    source = iter(items)
    first = list(islice(source, 2))
    if concurrency <= 1 or len(first) < 2:
        for item in chain(first, source):
            yield func(item)
        return
    source = chain(first, source)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="storage-read")
    pending = deque()
    try:
        for item in source:
            pending.append(pool.submit(func, item))
            if len(pending) >= concurrency:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(func, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


class ReplicaWriter(abc.ABC):
    """Streams one replica into the storage while computing MD5 and SHA256 in the same pass.

    write() any number of times, then commit() to make the replica readable under `key`, or abort()
    to remove everything written. A writer that is neither committed nor aborted leaves only data that
    data cleanup removes after its grace period.
    """

    key: str
    # Bytes a resumed writer read back from what was published before (the partly filled last chunk).
    bytes_read_back = 0

    @abc.abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abc.abstractmethod
    def commit(self) -> IngestResult: ...

    @abc.abstractmethod
    def abort(self) -> None: ...

    @property
    @abc.abstractmethod
    def bytes_written(self) -> int:
        """Bytes given to write() so far."""

    def write_area(self) -> memoryview | None:
        """Where the stream's next bytes may be placed directly (a socket's recv_into), saving write()'s
        copy: then `wrote(n)` takes the first n. None where the writer has no such buffer."""
        return None

    def wrote(self, n: int) -> None:
        """The first `n` bytes of `write_area()` are the stream's next bytes."""
        raise NotImplementedError

    # A writer that can publish what it has so far and go on writing (a resumable upload keeps its hash
    # state between requests that way). Backends that cannot say False.
    can_checkpoint = False

    def checkpoint(self, key: str) -> IngestResult:
        """Publish the bytes written so far as the replica `key` (MD5 and SHA256 of that prefix) and stay
        open: later writes continue the same stream, and commit() or another checkpoint() publish it
        under `self.key`. What a later abort() removes is only what was written after this call."""
        raise NotImplementedError

    def release(self) -> None:
        """Stop without publishing or removing anything (what a checkpoint published stays)."""
        raise NotImplementedError

    def resume_state(self) -> dict | None:
        """Right after checkpoint(): what `StorageBackend.resume_writer` needs to continue this stream in
        any process (hash midstates, where the complete chunks end) without reading it again; JSON-able.
        None where the backend cannot (the next writer then reads back what was published)."""
        return None


class StorageBackend(abc.ABC):
    def __init__(self, storage):
        self.storage = storage

    # Capacity
    @abc.abstractmethod
    def usage(self) -> Usage: ...

    def free_bytes(self) -> int:
        """Bytes still available; backends override it where that is cheaper than a full usage()."""
        return self.usage().free

    def check_capacity(self, nbytes: int) -> None:
        """Raise StorageFull when storing `nbytes` more would cross the reserved capacity."""
        free = self.free_bytes()
        if free - nbytes < self.storage.reserved_bytes:
            raise StorageFull(reserve_message(self.storage, free=free, nbytes=nbytes))

    # Writing
    @abc.abstractmethod
    def open_writer(self, key: str, *, expected_size: int | None = None) -> ReplicaWriter:
        """Start a replica; checks capacity for `expected_size` before anything is written."""

    def resume_writer(
        self, previous_key: str, key: str, state: dict, *, expected_size: int | None = None
    ) -> ReplicaWriter | None:
        """A writer that continues the stream a checkpoint published as `previous_key`, from the writer's
        `resume_state()`: later writes append to it and commit()/checkpoint() publish the whole. None
        where the backend cannot (the caller then starts a new writer and feeds it what was received)."""
        return None

    def ingest(
        self,
        source: str | Path | BinaryIO,
        *,
        key: str,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> IngestResult:
        """Store a whole file (a path or an open binary file) as the replica `key`.

        The capacity is checked before anything is written (for a path, or a file whose size is known).
        Raises Cancelled when `should_cancel` answers True, StorageFull when the storage fills up; in
        both cases nothing the call wrote stays referenced.
        """
        if isinstance(source, str | Path):
            with open(source, "rb") as file:
                return self.ingest(file, key=key, progress=progress, should_cancel=should_cancel)
        expected = None
        try:
            if source.seekable():
                position = source.tell()
                expected = source.seek(0, os.SEEK_END) - position
                source.seek(position)
        except (AttributeError, OSError, ValueError):
            expected = None
        return self.ingest_stream(
            iter(lambda: source.read(READ_BLOCK), b""),
            key=key,
            expected_size=expected,
            progress=progress,
            should_cancel=should_cancel,
        )

    def ingest_stream(
        self,
        blocks: Iterable[bytes],
        *,
        key: str,
        expected_size: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> IngestResult:
        """Store the concatenation of `blocks` as the replica `key` (see `ingest`)."""
        report = Throttled(progress)
        writer = self.open_writer(key, expected_size=expected_size)
        try:
            for block in blocks:
                if should_cancel is not None and should_cancel():
                    raise Cancelled(_cancelled_message())
                writer.write(block)
                report(writer.bytes_written)
            result = writer.commit()
        except BaseException:
            writer.abort()
            raise
        report(result.size, final=True)
        return result

    # Reading
    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The replica's size in bytes; raises ReplicaNotFound."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes from `start` up to, not including, `end` (None: to the end), as a stream of blocks."""

    @abc.abstractmethod
    def copy_to_path(self, key: str, path: str | Path) -> None:
        """Write a complete copy of the replica to a local path; all-zero regions stay sparse."""

    # Other
    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Forget the replica, and remove what writers of `key` wrote that nothing else uses yet (also
        when the writer was killed before it committed). Shared chunks stay."""

    def settle(self, key: str) -> None:
        """The replica `key` is complete and referenced: forget how its writer built it."""
        return None

    def copy_to(
        self,
        key: str,
        target: StorageBackend,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> IngestResult:
        """Copy the replica into another storage under the same key, moving only what it lacks.

        This general form streams the bytes through this process; backends override it where they can
        do better (missing chunks only, a server-side copy).
        """
        return target.ingest_stream(
            self.read_range(key),
            key=key,
            expected_size=self.size(key),
            progress=progress,
            should_cancel=should_cancel,
        )

    def presigned_url(
        self, key: str, *, expires_in: int, filename: str | None = None, method: str = "GET"
    ) -> str | None:
        """A URL that serves the replica without this server (S3 only) to a `method` ("GET" or "HEAD")
        request; None where there is none."""
        return None

    # Exports: complete files kept beside the replicas, by key (seed 003 "export image"). They are not
    # replicas: no manifest of chunks, never deduplicated, untouched by data cleanup, counted in usage.
    @abc.abstractmethod
    def export_put(
        self,
        key: str,
        source: str | Path,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> int:
        """Move the complete local file `source` into the exports area as `key` and return its size.
        The capacity is checked first; `source` is gone afterwards whether the call succeeds or not."""

    @abc.abstractmethod
    def export_size(self, key: str) -> int:
        """The export's size in bytes; raises ReplicaNotFound."""

    @abc.abstractmethod
    def export_read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The export's bytes from `start` up to, not including, `end` (None: to the end)."""

    @abc.abstractmethod
    def export_delete(self, key: str) -> None:
        """Remove the export; nothing happens when there is none."""

    def export_path(self, key: str) -> Path | None:
        """A local file holding the export, for a web server to send as it is; None where there is none."""
        return None

    def export_url(
        self, key: str, *, expires_in: int, filename: str | None = None, method: str = "GET"
    ) -> str | None:
        """A URL that serves the export without this server (S3 only) to a `method` ("GET" or "HEAD")
        request; None where there is none."""
        return None

    def data_reader(self) -> StorageBackend:
        """The backend compute hosts read images through (the image cache's uploads): this one, unless
        the storage reaches them over a data network of its own (a storage server's data network)."""
        return self

    @abc.abstractmethod
    def test_connection(self) -> None:
        """Raise StorageError with the reason when the storage cannot be used."""

    def reconnect(self) -> None:
        """test_connection(), after renewing what the backend can renew (a storage server's key)."""
        self.test_connection()

    @abc.abstractmethod
    def cleanup(self, *, referenced_keys: set[str], grace_seconds: float) -> CleanupResult:
        """Remove replicas whose key is not in `referenced_keys`, and the blobs nothing references.

        Only what is older than `grace_seconds` goes, so a write in flight (whose replica row may not
        exist yet) is never broken.
        """


def reserve_message(storage, *, free: int, nbytes: int) -> str:
    from django.template.defaultfilters import filesizeformat
    from django.utils.translation import gettext as _

    from imageconsole.core.sizes import sizes_apart

    if free < nbytes:
        free_shown, size_shown = sizes_apart(free, nbytes)
        return _(
            "Storage “%(name)s” is full: it has %(free)s free and the image needs %(size)s. Free space "
            "with a data cleanup, or choose another storage."
        ) % {"name": storage.name, "free": free_shown, "size": size_shown}
    usable = max(free - storage.reserved_bytes, 0)
    usable_shown, size_shown = sizes_apart(usable, nbytes)
    return _(
        "Storage “%(name)s” has %(free)s free, of which it keeps %(reserved)s in reserve: %(usable)s can "
        "be used and the image needs %(size)s. Free space with a data cleanup, or choose another storage."
    ) % {
        "name": storage.name,
        "free": filesizeformat(free),
        "reserved": filesizeformat(storage.reserved_bytes),
        "usable": usable_shown,
        "size": size_shown,
    }


def disk_full_message(storage) -> str:
    from django.utils.translation import gettext as _

    return _(
        "Storage “%(name)s” ran out of space while writing; nothing was kept. Free space with a data "
        "cleanup, or choose another storage."
    ) % {"name": storage.name}


def _cancelled_message() -> str:
    from django.utils.translation import gettext as _

    return _("The transfer was cancelled; nothing it wrote was kept.")
