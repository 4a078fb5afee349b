"""The storage backends: one interface (base.py), two implementations chosen by the storage's kind."""

from .base import (  # noqa: F401
    Cancelled,
    CleanupResult,
    IngestResult,
    ReplicaNotFound,
    ReplicaWriter,
    StorageBackend,
    StorageError,
    StorageFull,
    Usage,
)


def get_backend(storage) -> StorageBackend:
    # Imported on first use: a process that only touches standalone storages never loads boto3.
    if storage.is_server:
        from .server import ServerBackend

        return ServerBackend(storage)
    if storage.is_standalone:
        from .standalone import StandaloneBackend

        return StandaloneBackend(storage)
    from .s3 import S3Backend

    return S3Backend(storage)
