"""A URL import's job: fetch the file (images.fetch) into the import pipeline's sink.

The fetch resumes dropped connections itself; the bytes take an upload's path (stored as they arrive,
or staged for a conversion). The URL-import work owns `images.fetch`; this is only the glue.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils import timezone
from rq import get_current_job

from imageconsole.core.words import gettext as _
from imageconsole.core.words import message_of

from .. import conf
from ..checksums import ChecksumError, Expected
from ..decompress import DecompressError, DecompressingSink
from ..inspection import ImportRefused
from ..models import Image, UploadSession
from .imports import ImportNotAccepted, import_fail
from .pipeline import import_finish
from .progress import Heartbeat

logger = logging.getLogger("images.fetching")


def fetch_limit(image: Image) -> int | None:
    """The most a fetch may bring when its server announces no length: the tenant's quota headroom and
    the storage's free space; the fetch is cut off beyond it. (The free space only: a storage's usage()
    lists every chunk it holds, seconds on a large store, at the start of every URL import and Glance
    upload.)"""
    from storage.backends import StorageError, get_backend
    from tenants.models import Quota
    from tenants.services import tenant_usage

    from .imports import size_limit

    limits = []
    quota = Quota.objects.filter(tenant=image.tenant).first()
    if quota is not None and quota.max_bytes is not None:
        # This image's own reserved size is in the usage; it is what the fetch may fill.
        limits.append(max(quota.max_bytes - tenant_usage(tenant=image.tenant).bytes + image.size, 0))
    try:
        limits.append(max(get_backend(image.storage).free_bytes() - image.storage.reserved_bytes, 0))
    except StorageError:
        pass
    if image.source_format in ("raw", "iso"):
        limits.append(size_limit(image))
    return min(limits) if limits else None


def decompressed_limit(image_id) -> int | None:
    """The most bytes a compressed file may expand to: the fetch's limit (quota headroom, free space)
    and the target size (a qcow2 or VMDK file may pass its virtual size by its metadata: 1% and 64 MiB)."""
    from .imports import size_limit

    image = Image.objects.select_related("storage", "tenant").get(pk=image_id)
    limits = [size_limit(image) + size_limit(image) // 100 + 64 * 1024 * 1024]
    fetched = fetch_limit(image)
    if fetched is not None:
        limits.append(fetched)
    return min(limits)


class _CompressedFetch:
    """The glue between a fetch, its decompressor and the receiver for one compressed image.

    The receiver takes decompressed bytes whose length is unknown until the end, so the length the server
    announced (checked against the quota before the body, as for any fetch) is forgotten once the first
    bytes show a compressed file; the row's progress is then the download's (compressed bytes of the
    announced length), and the receiver's own reports (decompressed bytes of no known total) are muted.
    """

    def __init__(self, sink):
        self.sink = sink
        self.progress = None

    def on_detect(self, codec: str | None) -> None:
        receiver = self.sink.receiver
        self.progress = receiver.progress
        if codec is None:
            return
        receiver.set_decompressed()
        receiver.length = None
        receiver.session.length = None
        UploadSession.objects.filter(pk=receiver.session.pk).update(length=None)
        receiver.progress = _Muted(self.progress)

    def report(self, done: int, total: int | None) -> None:
        (self.progress or self.sink.receiver.progress).report(done, total)


class _Muted:
    def __init__(self, progress):
        self._progress = progress

    def report(self, done, total, *, final=False) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._progress, name)


def hash_sent_for(image: Image) -> str | None:
    """The algorithm to hash a compressed file's bytes as sent with: that of a checksum of the file as sent
    (a file that is not compressed is verified by its receiver)."""
    expected = Expected.of_image(image)
    return expected.algorithm if expected is not None and expected.of == "sent" else None


def verify_sent(image: Image, stream: DecompressingSink) -> None:
    """After a compressed file's last byte: its checksum as sent (ChecksumError naming both values), and
    the time it was verified on the row."""
    expected = Expected.of_image(image)
    digest = stream.sent_digest()
    if expected is None or expected.of != "sent" or digest is None:
        return
    expected.check(digest)
    Image.objects.filter(pk=image.pk).update(checksum_verified_at=timezone.now())


def import_fetch(*, image_id) -> None:
    from ..fetch import FetchCancelled, FetchError, FetchPolicy, fetch
    from .hostkeys import trust_on_first_use
    from .receiving import ImportSink

    image = Image.objects.select_related("owner", "storage", "tenant").filter(pk=image_id).first()
    if (
        image is None
        or image.status != Image.Status.UPLOADING
        or image.stage
        not in (
            Image.Stage.QUEUED,
            Image.Stage.DOWNLOADING,
        )
    ):
        return
    session = UploadSession.objects.get(image=image)
    overrides, allow_file = {}, bool(image.owner and image.owner.is_staff)
    if image.source == Image.Source.STORAGE_SCAN and not image.storage.is_server:
        # "Retrieve existing images": the storage's own files, under its mount path whatever
        # IMPORT_FILE_ROOTS says (an administrator chose them).
        overrides["file_roots"] = (Path(image.storage.mount_path).resolve(),)
        allow_file = True
    policy = FetchPolicy.from_settings(sftp_host_key_check=trust_on_first_use, **overrides)
    job = get_current_job()
    finish_here = False
    with Heartbeat(image.pk):
        try:
            sink = ImportSink(image.pk, job_id=job.id if job is not None else None)
        except (ImportNotAccepted, ImportRefused):
            return
        glue = _CompressedFetch(sink)
        stream = DecompressingSink(
            sink,
            limit=lambda: decompressed_limit(image.pk),
            max_ratio=conf.decompress_max_ratio(),
            on_detect=glue.on_detect,
            hash_sent=hash_sent_for(image),
        )
        try:
            if image.source == Image.Source.STORAGE_SCAN and image.storage.is_server:
                # A file on the storage's own server: read over the storage's connection and key.
                from storage.backends import StorageError, get_backend

                from ..fetch import fetch_storage_file
                from .retrieve import server_scan_path

                try:
                    path = server_scan_path(image.storage, session.source_url)
                except StorageError as error:  # the server cannot be reached
                    raise FetchError(str(error)) from error
                fetch_storage_file(
                    get_backend(image.storage),
                    path,
                    label=session.source_url,
                    sink=stream,
                    should_cancel=sink.cancelled,
                    check_length=sink.check_length,
                    max_bytes=fetch_limit(image),
                    policy=policy,
                    progress=lambda p: glue.report(p.bytes_done, p.bytes_total),
                )
            else:
                fetch(
                    session.source_url,
                    sink=stream,
                    secret=session.secret_encrypted,
                    should_cancel=sink.cancelled,
                    check_length=sink.check_length,
                    max_bytes=fetch_limit(image),
                    allow_file=allow_file,
                    policy=policy,
                    progress=lambda p: glue.report(p.bytes_done, p.bytes_total),
                )
            stream.finish()
            if stream.codec is not None:
                Image.objects.filter(pk=image.pk).update(
                    compression=stream.codec, compressed_size=stream.compressed_size
                )
                verify_sent(image, stream)
            sink.finish()
            finish_here = sink.finish_here
        except FetchCancelled:
            sink.abort()
        except ImportRefused:
            sink.abort()  # the receiver failed the image with the reason
        except ImportNotAccepted:
            sink.abort()
        except (DecompressError, ChecksumError) as error:
            sink.abort()
            import_fail(image_id=image.pk, message=message_of(error))
        except ValidationError as error:
            sink.abort()
            import_fail(image_id=image.pk, message=message_of(error))
        except FetchError as error:
            sink.abort()
            import_fail(image_id=image.pk, message=message_of(error))
        except Exception as error:
            logger.exception("fetch of %s failed", image.pk)
            sink.abort()
            import_fail(
                image_id=image.pk,
                message=_("The download failed unexpectedly (%(error)s).") % {"error": type(error).__name__},
            )
    if finish_here:
        # Stored as it arrived: this job inspects it and makes it available, as the finish job would.
        import_finish(image_id=image.pk, head=sink.head)  # (the receiver's, not read back)
