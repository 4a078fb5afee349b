"""glance-direct: `PUT /v2/images/{id}/stage` keeps the bytes in the image's staging directory until
`POST .../import` sends them through the import pipeline."""

from pathlib import Path

from images.models import Image
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
