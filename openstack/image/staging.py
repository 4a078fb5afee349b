"""glance-direct: `PUT /v2/images/{id}/stage` keeps the bytes in the image's staging directory until
`POST .../import` sends them through the import pipeline."""

import shutil
from pathlib import Path

from images.models import Image
from images.services.fetching import fetch_limit
from images.services.imports import staging_dir

STAGED_NAME = "glance-direct"


def staged_path(image_id) -> Path:
    return staging_dir(image_id) / STAGED_NAME


def is_staged(image: Image) -> bool:
    return (
        image.status == Image.Status.UPLOADING
        and image.stage == Image.Stage.QUEUED
        and staged_path(image.pk).exists()
    )


def stage_limit(image: Image) -> int:
    """The most a stage may hold: what the import could take (the tenant's quota headroom, the storage's
    free space, a raw image's target size), and no more than the staging area has free."""
    limits = [shutil.disk_usage(staged_path(image.pk).parent).free]
    import_limit = fetch_limit(image)
    if import_limit is not None:
        limits.append(import_limit)
    return min(limits)
