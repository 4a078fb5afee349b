from .base import (  # noqa: F401
    Cancelled,
    IngestResult,
    ReplicaWriter,
    StorageBackend,
    StorageError,
    StorageFull,
    Usage,
    get_backend,
)
