"""RQ entry points of the OpenStack API: thin, idempotent, take ids."""

from django.core.exceptions import ValidationError

from images.inspection import ImportRefused
from images.models import Image
from images.services.imports import ImportNotAccepted, import_fail
from images.services.receiving import upload_restart

from .image.staging import staged_path

BLOCK = 4 * 1024 * 1024


def glance_direct_import_job(*, image_id: str) -> None:
    """Feed a staged file to the image's import (RQ, queue `imports`). Safe to run twice: the staged file
    is removed once it is handed over."""
    from images.services.receiving import ImportReceiver

    path = staged_path(image_id)
    image = Image.objects.filter(pk=image_id).first()
    if image is None or not path.exists() or image.status != Image.Status.UPLOADING:
        return
    try:
        length = path.stat().st_size
        upload_restart(image_id=image_id, length=length, filename="")
        with path.open("rb") as staged, ImportReceiver(image_id=image_id, offset=0) as receiver:
            while data := staged.read(BLOCK):
                receiver.write(data)
            receiver.commit()
    except (ImportRefused, ImportNotAccepted, ValidationError) as error:
        message = getattr(error, "message", None) or " ".join(getattr(error, "messages", [str(error)]))
        import_fail(image_id=image_id, message=str(message))
    finally:
        path.unlink(missing_ok=True)
