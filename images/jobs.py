"""RQ entry points of the import pipeline: thin, take ids, safe to run twice."""

from storage import services as storage_services
from storage.backends.base import StorageError
from storage.models import ImageStorage

from .services import fetching, imports, pipeline, reconcile, storage_data


def import_finish_job(*, image_id: str) -> None:
    """Queue `imports`: inspect an image stored as it arrived and make it available."""
    pipeline.import_finish(image_id=image_id)


def import_convert_job(*, image_id: str) -> None:
    """Queue `convert`: inspect, convert and store a staged VMDK, VHD, VHDX or OVA."""
    pipeline.import_convert(image_id=image_id)


def import_fetch_job(*, image_id: str) -> None:
    """Queue `imports`: fetch a URL import's file into the pipeline."""
    fetching.import_fetch(image_id=image_id)


def import_cleanup_job(*, image_id: str) -> None:
    """Queue `default`: remove what an ended import left (staging files, partial replicas)."""
    imports.import_cleanup(image_id=image_id)


def reconcile_job() -> str:
    """Queue `maintenance`, every minute (images/cron.py): fail or resume imports whose job is gone."""
    return str(reconcile.reconcile())


def storage_cleanup_job(*, storage_id: int) -> str:
    """Queue `maintenance`: data cleanup of one storage (the admin's action)."""
    storage = ImageStorage.objects.filter(pk=storage_id).first()
    if storage is None:
        return "storage gone"
    return str(storage_data.storage_data_cleanup(storage=storage))


def replica_copy_job(*, replica_id: int, source_storage_id: int, mode: str) -> None:
    """Queue `default`: copy an image's replica to another storage (sync or migrate)."""
    storage_data.replica_copy_run(replica_id=replica_id, source_storage_id=source_storage_id, mode=mode)


def data_sweep_job() -> str:
    """Queue `maintenance`, every hour (images/cron.py): staging files past STAGING_EXPIRY_HOURS, and on
    every storage the chunks and objects no replica references past STORAGE_CLEANUP_GRACE_HOURS."""
    lines = []
    for storage in ImageStorage.objects.order_by("pk"):
        try:
            report = storage_services.storage_cleanup(
                storage=storage, referenced_keys=storage_data.referenced_keys(storage=storage)
            )
            lines.append(f"{storage.name}: {report}")
        except StorageError as error:
            lines.append(f"{storage.name}: {error}")
    removed, freed = storage_data.staging_cleanup()  # also when there is no storage yet
    lines.append(f"staging: {removed} files, {freed} bytes")
    return "; ".join(lines)
