"""The job of a compressed upload: decompress the staged file (as the client sent it) into the pipeline.

The receiver stages a compressed upload as sent (its first bytes decide, images.decompress), because the
tus offsets are those of the bytes the client sent and a resume in another process must be able to
continue it. After the last byte this job reads the staged file once through a `Decompressor` into a
fresh `ImportReceiver`, so inspection, hashing and storing (or the staging file of a conversion) see the
decompressed image, with the same limits as a compressed URL import (target size, quota, free space,
IMPORT_DECOMPRESS_MAX_RATIO). The receiver then hands the image to its usual `finish` or `convert` job.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.utils import timezone

from imageconsole.core.words import gettext as _
from imageconsole.core.words import message_of

from .. import conf
from ..checksums import ChecksumError
from ..decompress import DecompressError, DecompressingSink
from ..inspection import ImportRefused
from ..models import Image, UploadSession
from .fetching import decompressed_limit, hash_sent_for, verify_sent
from .imports import ImportNotAccepted, import_fail, staging_dir
from .progress import Heartbeat

logger = logging.getLogger("images.decompressing")

READ_BLOCK = 1 << 20


class _Target:
    """What the decompressor writes into: the receiver (a staged file has no restart)."""

    def __init__(self, receiver):
        self.receiver = receiver

    def write(self, data: bytes) -> None:
        self.receiver.write(data)

    def reset(self) -> None:
        raise AssertionError("a staged file is read once")


def import_decompress(*, image_id, enqueue: bool = True) -> None:
    """`enqueue=False`: leave the image in `inspecting` for the caller to run its `finish` or `convert`
    (manage.py importimage, which does the whole import in its own process)."""
    from .receiving import ImportReceiver

    image = Image.objects.filter(pk=image_id).first()
    if image is None or image.status != Image.Status.UPLOADING or image.stage != Image.Stage.INSPECTING:
        return
    session = UploadSession.objects.get(image=image)
    if not session.compression:
        return
    directory = staging_dir(image.pk)
    source = directory / "upload"
    packed = directory / "compressed"
    if source.exists():
        source.replace(packed)  # the receiver's own staging file (a conversion) gets the decompressed bytes
    if not packed.exists():
        import_fail(
            image_id=image.pk,
            message=_("The uploaded file is gone from the staging area; import the image again."),
        )
        return
    codec = session.compression
    compressed_size = packed.stat().st_size
    # The decompressed image is received like any upload of unknown length.
    UploadSession.objects.filter(pk=session.pk).update(offset=0, length=None, compression="")
    Image.objects.filter(pk=image.pk, status=Image.Status.UPLOADING).update(
        stage=Image.Stage.RECEIVING,
        compression=codec,
        compressed_size=compressed_size,
        bytes_done=0,
        updated_at=timezone.now(),
    )
    with Heartbeat(image.pk):
        try:
            receiver = ImportReceiver(
                image_id=image.pk,
                offset=0,
                lock=False,
                detect_compression=False,
                decompressed=True,
                enqueue=enqueue,
            )
        except (ImportNotAccepted, ImportRefused):
            return
        stream = DecompressingSink(
            _Target(receiver),
            limit=lambda: decompressed_limit(image.pk),
            max_ratio=conf.decompress_max_ratio(),
            hash_sent=hash_sent_for(image),
        )
        try:
            with open(packed, "rb") as staged:
                while block := staged.read(READ_BLOCK):
                    stream.write(block)
            stream.finish()
            if stream.codec is None:
                raise DecompressError(_("The staged file is no longer compressed; import the image again."))
            verify_sent(image, stream)
            packed.unlink(missing_ok=True)
            receiver.finish()
        except (DecompressError, ChecksumError) as error:
            receiver.abort()
            import_fail(image_id=image.pk, message=message_of(error))
        except (ImportRefused, ImportNotAccepted):
            receiver.abort()  # refused: the receiver failed the image; cancelled: cleaned up by the cancel
        except ValidationError as error:
            receiver.abort()
            import_fail(image_id=image.pk, message=message_of(error))
        except Exception as error:
            logger.exception("decompression of %s failed", image.pk)
            receiver.abort()
            import_fail(
                image_id=image.pk,
                message=_(
                    "The import failed unexpectedly (%(error)s). Try again; if it fails again, tell an "
                    "administrator."
                )
                % {"error": type(error).__name__},
            )
