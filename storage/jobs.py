"""RQ entry points of the storage app: thin, take ids, safe to run twice."""

from .models import ImageStorage


def storage_cleanup_job(*, storage_id: int) -> str:
    from .services import storage_cleanup

    storage = ImageStorage.objects.filter(pk=storage_id).first()
    if storage is None:
        return "storage gone"
    return str(storage_cleanup(storage=storage))


def replica_copy_job(*, replica_id: int, source_storage_id: int, mode: str) -> None:
    from .services import replica_copy_run

    replica_copy_run(replica_id=replica_id, source_storage_id=source_storage_id, mode=mode)
