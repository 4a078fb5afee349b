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
    get_backend,
)
