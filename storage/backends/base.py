"""The one interface every image storage backend implements; `get_backend(storage)` picks by kind.

Callers (the import pipeline, downloads, sync and migrate) use only what is declared here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


class StorageError(Exception):
    """A storage operation failed; the message is meant for a person and says what to do."""


class StorageFull(StorageError):
    """Writing would leave less than the storage's reserved capacity (or the disk is full)."""


class Cancelled(StorageError):
    """The caller's `should_cancel` answered True; everything written by the call was removed."""


@dataclass(frozen=True)
class IngestResult:
    key: str
    size: int
    md5: str
    sha256: str


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


class ReplicaWriter(abc.ABC):
    """Streams one replica into the storage while computing MD5 and SHA256 in the same pass.

    write() any number of times, then commit() to make the replica readable under `key`, or abort()
    to remove everything written. A writer that is neither committed nor aborted leaves only data that
    data cleanup removes after its grace period.
    """

    key: str

    @abc.abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abc.abstractmethod
    def commit(self) -> IngestResult: ...

    @abc.abstractmethod
    def abort(self) -> None: ...

    @property
    @abc.abstractmethod
    def bytes_written(self) -> int: ...


class StorageBackend(abc.ABC):
    def __init__(self, storage):
        self.storage = storage

    # Capacity
    @abc.abstractmethod
    def usage(self) -> Usage: ...

    def check_capacity(self, nbytes: int) -> None:
        """Raise StorageFull when storing `nbytes` more would cross the reserved capacity."""
        usage = self.usage()
        if usage.free - nbytes < self.storage.reserved_bytes:
            from django.template.defaultfilters import filesizeformat
            from django.utils.translation import gettext as _

            raise StorageFull(
                _("Storage “%(name)s” has %(free)s free and keeps %(reserved)s in reserve, so it cannot take "
                  "%(size)s more. Free space with a data cleanup, or choose another storage.")
                % {
                    "name": self.storage.name,
                    "free": filesizeformat(usage.free),
                    "reserved": filesizeformat(self.storage.reserved_bytes),
                    "size": filesizeformat(nbytes),
                }
            )

    # Writing
    @abc.abstractmethod
    def open_writer(self, key: str, *, expected_size: int | None = None) -> ReplicaWriter:
        """Start a replica; checks capacity for `expected_size` before anything is written."""

    def ingest(
        self,
        source: str | Path | BinaryIO,
        *,
        key: str,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> IngestResult:
        """Store a whole file (a path or an open binary file) as the replica `key`."""
        raise NotImplementedError

    # Reading
    @abc.abstractmethod
    def size(self, key: str) -> int: ...

    @abc.abstractmethod
    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes from `start` up to, not including, `end` (None: to the end), as a stream of blocks."""

    @abc.abstractmethod
    def copy_to_path(self, key: str, path: str | Path) -> None:
        """Write a complete copy of the replica to a local path; all-zero regions stay sparse."""

    # Other
    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Forget the replica. Shared chunks stay until data cleanup finds them unreferenced."""

    @abc.abstractmethod
    def copy_to(self, key: str, target: StorageBackend, *, progress: ProgressCallback | None = None) -> IngestResult:
        """Copy the replica into another storage under the same key, moving only what it lacks."""

    def presigned_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str | None:
        """A URL that serves the replica without this server (S3 only); None where there is none."""
        return None

    def test_connection(self) -> None:
        """Raise StorageError with the reason when the storage cannot be used."""


def get_backend(storage) -> StorageBackend:
    from storage.models import ImageStorage

    if storage.kind == ImageStorage.Kind.STANDALONE:
        from .standalone import StandaloneBackend

        return StandaloneBackend(storage)
    from .s3 import S3Backend

    return S3Backend(storage)
