"""RQ entry points of the import pipeline: thin, take ids, safe to run twice."""

from .services import fetching, imports, pipeline, reconcile


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


def data_sweep_job() -> str:
    """Queue `maintenance`, every hour (images/cron.py): staging files past STAGING_EXPIRY_HOURS, and on
    every storage the chunks and objects no replica references past STORAGE_CLEANUP_GRACE_HOURS."""
    from storage.backends.base import StorageError
    from storage.models import ImageStorage
    from storage.services import staging_cleanup, storage_cleanup

    lines = []
    for storage in ImageStorage.objects.order_by("pk"):
        try:
            lines.append(f"{storage.name}: {storage_cleanup(storage=storage)}")
        except StorageError as error:
            lines.append(f"{storage.name}: {error}")
    removed, freed = staging_cleanup()  # also when there is no storage yet
    lines.append(f"staging: {removed} files, {freed} bytes")
    return "; ".join(lines)
