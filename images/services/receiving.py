"""Taking an import's bytes as they arrive, whatever brings them (tus PATCH, PUT, a URL fetch, a command).

The bytes are passed over once. An image stored as it is (qcow2, raw, ISO) goes straight into the
storage through a ReplicaWriter, which hashes MD5 and SHA256 in the same pass, while the format
inspector looks at the same blocks; a file to be converted (VMDK, VHD, VHDX, OVA) goes to a staging
file, SHA256 and the inspector beside it. A file that is not what was claimed is refused after its first
few hundred kilobytes.

A receiver serves one request. `commit()` keeps what it received (the tus offset is what was committed):
a stored image's partial replica (published by the storage writer's checkpoint, which stays open), a
staged file flushed to disk. A later request resumes from that offset. When it reaches the same process
(a client sending its file in several PATCHes over one keep-alive connection usually does), the
receiver takes over the live state the previous request left in this process: hashes, inspector and
the open storage writer, and nothing is read again. Anywhere else (another web process, after a restart,
after LIVE_IDLE_SECONDS) it takes over the receive state the commit wrote into the upload's row in the
same UPDATE as the offset (UploadSession.receive_state: the hash midstates, the storage writer's complete
chunks, the format inspector, the head so far), so the offset a client is told is always a state any
process continues from without reading a byte again. Only the last, partly filled storage chunk (less
than 4 MiB, none when requests end on 4 MiB boundaries) is read back. Where no state could be kept (an
S3 storage, whose writer cannot checkpoint; a Python or OpenSSL whose hash midstates storage.backends.
hashstate cannot carry) what was received is read again, and UploadSession.bytes_reread counts it.

    receiver = ImportReceiver(image_id=..., offset=...)
    with receiver:
        for block in blocks:
            receiver.write(block)
        receiver.commit()      # on the last byte: checks, then the follow-up job is enqueued

A web request that sends an upload's last byte (`finish_in_request=True`: PUT, tus PATCH, Glance's file
PUT) makes an image stored as it arrived available itself before it answers, still holding the upload's
lock, instead of enqueueing the finish: the client sees the image available in the answer, and no
queue hop and work-horse fork stand between the last byte and `available`. A file the finish refuses
(its tables, its virtual size) is failed and cleaned up as by the job, and `commit()` raises ImportRefused
with the reason, so the request answers as for a file refused while it arrived. The image's job id then
names the request (imports.REQUEST_JOB_PREFIX); the reconciler leaves it alone while the lock is held
or the finish's heartbeat beats, and enqueues the finish once if the request's process died before it.
A file to convert (staged) or decompress still goes to its job.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, LockNotOwnedError
from redis.exceptions import TimeoutError as RedisTimeoutError

from imageconsole.core.queues import connection as redis_connection
from imageconsole.core.words import gettext as _
from imageconsole.core.words import message_of
from storage.backends import StorageError, get_backend, hashstate

from ..inspection import HEAD_BYTES, ImportRefused, StreamInspector, inspector_restore, inspector_state
from ..models import Image, ImageReplica, UploadSession
from .imports import (
    CancelCheck,
    ImportNotAccepted,
    cancel_requested,
    delete_stored,
    image_id_of,
    import_fail,
    import_hand_over,
    needs_conversion,
    request_job_id,
    staging_dir,
    upload_begin,
)
from .pipeline import import_finish
from .progress import StageProgress

logger = logging.getLogger("images.receiving")

MiB = 1024 * 1024
BLOCK_SIZE = 4 * MiB
LOCK_SECONDS = 60
TICK_SECONDS = 1.0
HASH_QUEUE = 4


# --- state kept between the requests of one upload, in this process ------------------------------

LIVE_IDLE_SECONDS = 600
LIVE_MAX = 32


@dataclass
class _Live:
    offset: int  # the committed offset it continues from
    key: str | None  # stored: the replica key the writer's checkpoint published
    writer: object | None  # stored: the storage writer, still open
    hashers: dict | None  # the receiver's own hashes so far, by name (staged: SHA256)
    inspector: StreamInspector | None
    head: bytearray | None
    touched: float
    head_on_disk: bool = False
    extra: object | None = None  # the expected checksum's own hasher (images.checksums), if any


_live: dict = {}
_live_mutex = threading.Lock()


def _live_put(image_id, state: _Live) -> None:
    expired = []
    with _live_mutex:
        now = time.monotonic()
        for other, entry in list(_live.items()):
            if now - entry.touched > LIVE_IDLE_SECONDS:
                expired.append(_live.pop(other))
        while len(_live) >= LIVE_MAX:
            oldest = min(_live, key=lambda other: _live[other].touched)
            expired.append(_live.pop(oldest))
        replaced = _live.pop(image_id, None)
        if replaced is not None:
            expired.append(replaced)
        _live[image_id] = state
    for entry in expired:
        _live_release(entry)


def _live_take(image_id) -> _Live | None:
    with _live_mutex:
        return _live.pop(image_id, None)


def _live_release(entry: _Live) -> None:
    if entry.writer is not None:
        entry.writer.release()


def live_forget(image_id=None) -> None:
    """Drop the live state of one upload (or of all): the next request re-reads what was received."""
    with _live_mutex:
        entries = list(_live.values()) if image_id is None else [_live.pop(image_id, None)]
        if image_id is None:
            _live.clear()
    for entry in entries:
        if entry is not None:
            _live_release(entry)


class UploadBusy(ImportNotAccepted):
    status = 423


# Redis unreachable (stopped, restarting, network): an upload rides it out where it can.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


class QueueUnavailable(ImportNotAccepted):
    """Redis, which keeps the upload locks and the job queues, does not answer: a 503 to try again."""

    status = 503

    def __init__(self):
        super().__init__(
            _(
                "The console's job queue (Redis) does not answer right now, so no upload can start. What "
                "arrived before is kept; send the file again (or resume the upload) in a minute."
            )
        )


class OffsetMismatch(ImportNotAccepted):
    def __init__(self, offset: int):
        super().__init__(
            _("The upload is at byte %(offset)d; continue from there.") % {"offset": offset}, status=409
        )
        self.offset = offset


class ImportCancelled(ImportNotAccepted):
    status = 410


class _ExtraHash:
    """The one more hasher an expected checksum may need (SHA-1, SHA-512; MD5 of a staged file), on a
    thread of its own beside the receiver's MD5 and SHA256: the same bytes, no second read."""

    def __init__(self, hasher):
        self.hasher = hasher
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-checksum")
        self._pending: deque[Future] = deque()

    def update(self, data: bytes) -> None:
        self._pending.append(self._pool.submit(self.hasher.update, data))
        while len(self._pending) > HASH_QUEUE:
            self._pending.popleft().result()

    def drain(self):
        while self._pending:
            self._pending.popleft().result()
        return self.hasher

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _expiry():
    """Each request that keeps bytes extends the upload's life (tus expiration)."""
    from datetime import timedelta

    from .. import conf

    return timezone.now() + timedelta(hours=conf.upload_expiry_hours())


def upload_in_progress(image_id) -> bool:
    """True while a request holds the image's upload lock (it is receiving bytes right now)."""
    try:
        return bool(redis_connection("imports").exists(_lock_name(image_id)))
    except REDIS_DOWN:
        return True  # cannot tell: assume the upload goes on


def _lock_name(image_id) -> str:
    return f"imageconsole:upload-lock:{image_id}"


def _lock_for(image_id):
    connection = redis_connection("imports")
    return connection.lock(_lock_name(image_id), timeout=LOCK_SECONDS)


@contextmanager
def upload_lock(image_id):
    """Hold the image's upload lock (no receiver may run meanwhile); UploadBusy when one does."""
    lock = _lock_for(image_id)
    try:
        acquired = lock.acquire(blocking=False)
    except REDIS_DOWN as error:
        raise QueueUnavailable() from error
    if not acquired:
        raise UploadBusy(_("Another request is sending this image's bytes; try again in a moment."))
    try:
        yield
    finally:
        _release(lock)


def _release(lock) -> None:
    try:
        lock.release()
    except (LockError, *REDIS_DOWN):
        pass  # expired meanwhile, or Redis is away: its timeout frees it


def upload_restart(*, image_id, length: int, filename: str = "") -> UploadSession:
    """Start an upload again from its first byte (a PUT replaces what an earlier attempt received)."""
    with upload_lock(image_id):
        image = Image.objects.select_related("storage").get(pk=image_id)
        session = UploadSession.objects.get(image=image)
        if (
            session.offset
            and image.status == Image.Status.UPLOADING
            and image.stage
            in (
                Image.Stage.QUEUED,
                Image.Stage.RECEIVING,
            )
        ):
            for replica in ImageReplica.objects.filter(image=image).exclude(state=ImageReplica.State.READY):
                delete_stored(storage=replica.storage, key=replica.key)
                replica.delete()
            shutil.rmtree(staging_dir(image_id), ignore_errors=True)
            UploadSession.objects.filter(pk=session.pk).update(
                offset=0, resumes=0, receive_state=None, updated_at=timezone.now()
            )
        return upload_begin(image_id=image_id, length=length, filename=filename)


class ImportReceiver:
    """Receives one import's bytes from `offset` on. See the module's docstring."""

    def __init__(
        self,
        *,
        image_id,
        offset: int,
        enqueue: bool = True,
        lock: bool = True,
        detect_compression: bool = True,
        unknown_length: bool = False,
        decompressed: bool = False,
        continue_in_job: str | None = None,
        finish_in_request: bool = False,
    ):
        """`unknown_length`: an upload whose length comes with its end (a chunked PUT); `finish()` ends it.
        `decompressed`: the bytes are a compressed file's decompressed ones (see `set_decompressed`).
        `continue_in_job`: the id of the running job that receives (a fetch), which finishes an image
        stored as it arrived itself (`finish_here`) instead of enqueueing a job for it: a fork and a
        queue hop less between the last byte and `available`.
        `finish_in_request`: the receiver serves a web request, which finishes such an image itself (see
        the module's docstring): `commit()` returns once it is available (or failed)."""
        self.continue_in_job = continue_in_job
        self.finish_in_request = finish_in_request and continue_in_job is None
        self.finish_here = False
        self.image_id = image_id_of(image_id)
        self.unknown_length = unknown_length
        self.sent_bytes = not decompressed
        self._extra: _ExtraHash | None = None
        self.enqueue = enqueue
        self.detect_compression = detect_compression
        self._lock = None
        self._writer = None
        self._file = None
        self._hash_pool: ThreadPoolExecutor | None = None
        self._hashing: deque[Future] = deque()
        self._committed = False
        self._last_tick = time.monotonic()  # the lock is taken and the cancel checked as it opens
        self._reread = 0  # bytes this request read back to rebuild the state (see bytes_reread)
        self._head_on_disk = False
        if lock:
            self._acquire_lock()
        try:
            self._open(offset)
        except BaseException:
            self._discard_current()
            self._close()
            raise

    # Setting up --------------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        self._lock = _lock_for(self.image_id)
        try:
            acquired = self._lock.acquire(blocking=False)
        except REDIS_DOWN as error:
            self._lock = None
            raise QueueUnavailable() from error
        if not acquired:
            self._lock = None
            raise UploadBusy(_("Another request is sending this image's bytes; try again in a moment."))

    def _open(self, offset: int) -> None:
        session = UploadSession.objects.select_related("image__storage").get(image_id=self.image_id)
        image = session.image
        if image.status != Image.Status.UPLOADING or session.cancel_requested:
            raise ImportCancelled(image.error or _("The import was cancelled."))
        receiving = (Image.Stage.QUEUED, Image.Stage.RECEIVING, Image.Stage.DOWNLOADING)
        if image.stage not in receiving:
            raise ImportNotAccepted(_("The whole file was received already; the image is being processed."))
        # (A compressed upload's decompression, images.services.decompressing, learns its length at the end.)
        if (
            session.length is None
            and image.source == Image.Source.UPLOAD
            and self.detect_compression
            and not self.unknown_length
        ):
            raise ImportNotAccepted(_("The upload's length is not known yet."), status=400)
        if offset != session.offset:
            raise OffsetMismatch(session.offset)
        self.image = image
        self.session = session
        self.length = session.length
        self.start = offset
        self.position = 0
        self.staged = needs_conversion(image.source_format)
        claimed = None if image.source_format == "ova" else image.source_format
        self.inspector = StreamInspector(claimed) if claimed else None
        if offset and session.compression:
            self.staged, self.inspector = True, None  # see _begin_compressed
        self.directory = staging_dir(image.pk)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_checksum(compressed=bool(offset and session.compression))
        stage = Image.Stage.RECEIVING if image.source == Image.Source.UPLOAD else Image.Stage.DOWNLOADING
        self.progress = StageProgress(image.pk, stage, row=image)
        self.progress.report(offset, self.length)
        live = _live_take(image.pk) if offset else None
        if live is not None and live.offset != offset:
            _live_release(live)
            live = None
        kept = self._kept_state(offset) if offset else None
        try:
            if self.staged:
                self._open_staged(offset, live, kept)
            else:
                self._open_stored(offset, live, kept)
        except BaseException:
            if live is not None and live.writer is not self._writer:
                _live_release(live)
            raise

    def _kept_state(self, offset: int) -> dict | None:
        """The receive state the last commit wrote with the offset, when it describes this offset."""
        blob = self.session.receive_state
        if not blob:
            return None
        try:
            state = pickle.loads(bytes(blob))  # noqa: S301 - written by _state_blob, kept server-side
        except Exception:  # noqa: BLE001 - an unreadable state is rebuilt by reading again
            logger.warning("upload of %s: its receive state cannot be read", self.image_id, exc_info=True)
            return None
        if not isinstance(state, dict) or state.get("version") != 1 or state.get("offset") != offset:
            return None
        if state.get("staged") != self.staged:
            return None
        return state

    def _state_blob(self, writer=None) -> bytes | None:
        """What `_kept_state` reads back in any process; None when some part of it cannot be kept."""
        state = {"version": 1, "offset": self.position, "staged": self.staged}
        if self.inspector is not None:
            state["inspector"] = inspector_state(self.inspector)
        # The receiver's own hashers by name (SHA256 of a staged file; any other algorithm that
        # storage.backends.hashstate carries may join them, e.g. a checksum of the file as sent).
        hashes = hashstate.export_all(self._hashers)
        if hashes is None:
            return None
        state["hashes"] = hashes
        if self._extra is not None:  # the expected checksum's own hasher goes on elsewhere too
            hasher = self._extra.drain()
            extra = hashstate.export(hasher)
            if extra is None:
                return None
            state["extra"] = (hasher.name, extra)
        if not self.staged:
            resume = writer.resume_state() if writer is not None else None
            if resume is None:
                return None
            state["key"] = self._key
            state["writer"] = resume
            state["head"] = None if self._head_on_disk or len(self._head) >= HEAD_BYTES else bytes(self._head)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def _open_staged(self, offset: int, live: _Live | None, kept: dict | None = None) -> None:
        path = self.directory / "upload"
        self.staging_path = path
        self._file = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 - closed in _close
        complete = os.fstat(self._file.fileno()).st_size >= offset
        self._file.truncate(offset)
        self._hashers = {"sha256": hashlib.sha256()}
        self._hash_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-sha256")
        if live is not None and live.hashers is not None and complete:
            self._hashers = live.hashers
            self.inspector = live.inspector
            self._take_live_extra(live)
            self.position = offset
        elif kept is not None and complete:
            try:
                hashers = hashstate.restore_all(kept["hashes"])
                extra = self._kept_extra(kept)
                self._hashers = hashers
                self.inspector = inspector_restore(kept.get("inspector"))
                if extra is not None:
                    self._extra.hasher = extra
                self.position = offset
            except (KeyError, ValueError, pickle.UnpicklingError):
                logger.warning("upload of %s: its receive state cannot be used", self.image_id, exc_info=True)
                self._hashers = {"sha256": hashlib.sha256()}
                self.inspector = self._fresh_inspector()
        if self.position < offset:
            logger.info("upload of %s: rebuilding its state by re-reading %d bytes", self.image_id, offset)
        self._file.seek(0)
        while self.position < offset:
            data = self._file.read(min(BLOCK_SIZE, offset - self.position))
            if not data:
                raise ImportNotAccepted(
                    _("The staged part of the upload is missing; start the upload again.")
                )
            self._reread += len(data)
            self._consume(data, store=False)
        self._file.seek(offset)

    def _fresh_inspector(self) -> StreamInspector | None:
        claimed = None if self.image.source_format == "ova" else self.image.source_format
        if not claimed or (self.start and self.session.compression):
            return None
        return StreamInspector(claimed)

    @property
    def _sha256(self):
        return self._hashers["sha256"]

    def _open_stored(self, offset: int, live: _Live | None, kept: dict | None = None) -> None:
        image = self.image
        self.staging_path = self.directory / "head"
        self._head = bytearray()
        self._hashers = {}  # MD5 and SHA256 are the storage writer's
        self.backend = get_backend(image.storage)
        previous = ImageReplica.objects.filter(image=image, storage=image.storage).first()
        self._previous = previous
        self._previous_key = previous.key if previous is not None else None
        if offset and self._previous_key is None:
            raise ImportNotAccepted(_("The part of the upload received so far is missing; start again."))
        self._key = str(image.pk) if offset == 0 else f"{image.pk}-r{self.session.resumes + 1}"
        if live is not None and live.writer is not None and live.key == self._previous_key:
            self._writer = live.writer
            self._writer.key = self._key
            self._hashers = live.hashers or {}
            self.inspector = live.inspector
            self._take_live_extra(live)
            self._head = live.head
            self._head_on_disk = live.head_on_disk
            self.position = offset
            return
        if live is not None:
            _live_release(live)
        if kept is not None and kept.get("key") == self._previous_key and self._resume_kept(kept):
            return
        try:
            self._writer = self.backend.open_writer(self._key, expected_size=self.length)
        except StorageError as error:
            raise ImportRefused(message_of(error), code="storage") from error
        if offset:
            logger.info("upload of %s: rebuilding its state by re-reading %d bytes", self.image_id, offset)
            for block in self.backend.read_range(self._previous_key, 0, offset):
                self._reread += len(block)
                self._consume(block)

    def _resume_kept(self, kept: dict) -> bool:
        """Continue the stored stream from the state the last commit kept; False when it cannot be."""
        head = kept.get("head")
        if head is None and not Path(self.staging_path).exists():
            return False
        try:
            inspector = inspector_restore(kept.get("inspector"))
            hashers = hashstate.restore_all(kept.get("hashes", {}))
            extra = self._kept_extra(kept)
            writer = self.backend.resume_writer(
                self._previous_key, self._key, kept["writer"], expected_size=self.length
            )
        except StorageError as error:
            raise ImportRefused(message_of(error), code="storage") from error
        except (KeyError, ValueError, pickle.UnpicklingError):
            logger.warning("upload of %s: its receive state cannot be used", self.image_id, exc_info=True)
            return False
        if writer is None:
            return False
        self._writer = writer
        self._reread += writer.bytes_read_back
        self._hashers = hashers
        if extra is not None:
            self._extra.hasher = extra
        self.inspector = inspector
        if head is None:
            self._head_on_disk = True  # complete, in the staging file the first request wrote
        else:
            self._head = bytearray(head)
        self.position = self.start
        return True

    def _kept_extra(self, kept: dict):
        """The expected checksum's hasher as the last commit kept it (None: this receiver has none);
        ValueError when it is needed and was not kept, so that the bytes are read again."""
        if self._extra is None:
            return None
        if not kept.get("extra"):
            raise ValueError("no checksum hasher kept")
        name, state = kept["extra"]
        if name != self._extra.hasher.name:
            raise ValueError(f"the kept checksum hasher is {name}")
        return hashstate.restore(name, state)

    def _open_checksum(self, *, compressed: bool) -> None:
        """The expected checksum (images.checksums) this receiver verifies, and its own hasher when the
        algorithm is not one computed anyway (SHA256; MD5 of a stored image)."""
        from ..checksums import Expected, extra_hasher

        self._close_extra()
        self.expected = Expected.of_image(self.image)
        if compressed or not self._verifies():
            return
        hasher = extra_hasher(self.expected, have=("sha256",) if self.staged else ("md5", "sha256"))
        if hasher is not None:
            self._extra = _ExtraHash(hasher)

    def _verifies(self) -> bool:
        """Whether the expected checksum covers the bytes this receiver takes."""
        return self.expected is not None and (self.expected.of == "image" or self.sent_bytes)

    def _take_live_extra(self, live: _Live) -> None:
        if self._extra is not None and live.extra is not None:
            self._extra.hasher = live.extra

    def _close_extra(self) -> None:
        if self._extra is not None:
            self._extra.close()
            self._extra = None

    def set_decompressed(self) -> None:
        """The bytes that come are a compressed file's decompressed ones: a checksum of the file as sent is
        verified where the compressed bytes pass (images.decompress), not here."""
        self.sent_bytes = False
        if not self._verifies():
            self._close_extra()

    # Taking bytes ------------------------------------------------------------------------------

    def _consume(self, data: bytes, *, store: bool = True) -> None:
        if self.inspector is not None:
            self.inspector.feed(data)
        if self._extra is not None:  # (it reads on a thread of its own: a handed buffer goes back sooner)
            self._extra.update(data if isinstance(data, bytes) else bytes(data))
        if self.staged:
            if store:
                self._file.write(data)
            self._hashing.append(self._hash_pool.submit(self._hash, data))
            while len(self._hashing) > HASH_QUEUE:
                self._hashing.popleft().result()
        else:
            if not self._head_on_disk and len(self._head) < HEAD_BYTES:
                self._head += data[: HEAD_BYTES - len(self._head)]
            self._writer.write(data)
        self.position += len(data)

    def _hash(self, data: bytes) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)

    def write(self, data: bytes) -> None:
        """Take the next bytes. Raises ImportRefused (the image has failed), ImportCancelled, or
        ImportNotAccepted (more bytes than announced)."""
        if not data:
            return
        if self.length is not None and self.position + len(data) > self.length:
            raise ImportNotAccepted(
                _("More bytes arrived than the %(length)d announced.") % {"length": self.length}, status=413
            )
        if (
            self.position == 0
            and self.start == 0
            and self.detect_compression
            and self.image.source == Image.Source.UPLOAD
        ):
            self._begin_compressed(data)
        with self._refusing():
            self._consume(data)
        self.tick()

    @property
    def handed_block_size(self) -> int | None:
        """The size of the buffers a producer may give away with their bytes (a whole one each write,
        storage.backends.standalone.HandedBuffer): the storage writer stores them without a copy. None
        where they would be copied anyway (staged, an expected checksum's hasher, no such writer)."""
        if self.staged or self._writer is None or self._extra is not None:
            return None
        return getattr(self._writer, "handed_block_size", None)

    def write_area(self) -> memoryview | None:
        """Where the next bytes may be received in place (a socket's recv_into), then `wrote(n)`: the
        storage writer's chunk buffer (ReplicaWriter.write_area), which saves write()'s copy of every
        byte. None (use write()) for the first bytes (they decide compression), a staged file, or an
        expected checksum's hasher (it reads the bytes on a thread of its own, after the call)."""
        if self.staged or self._writer is None or self._extra is not None or self.position == 0:
            return None
        area = self._writer.write_area()
        if area is None or self.length is None:
            return area
        area = area[: self.length - self.position]
        return area if len(area) else None

    def wrote(self, area: memoryview, n: int) -> None:
        """The first `n` bytes of `area` (this receiver's write_area()) are the upload's next bytes."""
        if not n:
            return
        data = area[:n]
        with self._refusing():
            if self.inspector is not None:
                self.inspector.feed(data)
            if not self._head_on_disk and len(self._head) < HEAD_BYTES:
                self._head += data[: HEAD_BYTES - len(self._head)]
            self._writer.wrote(n)
        self.position += n
        self.tick()

    @contextmanager
    def _refusing(self):
        """A file found unacceptable, or a storage failing, fails the image (ImportRefused)."""
        try:
            yield
        except ImportRefused as refused:
            self.refuse(refused)
            raise
        except StorageError as error:
            refused = ImportRefused(message_of(error), code="storage")
            self.refuse(refused)
            raise refused from error

    def _begin_compressed(self, data: bytes) -> None:
        """The first bytes of an upload decide whether it is compressed (images.decompress): if so it is
        staged as sent, recorded on the session (a resume elsewhere stages the rest the same way), and its
        job decompresses it after the last byte (`_complete`)."""
        from ..decompress import detect

        self.detect_compression = False
        codec = detect(data) or ""
        if codec != self.session.compression:
            UploadSession.objects.filter(pk=self.session.pk).update(compression=codec)
            self.session.compression = codec
        if codec:
            self.inspector = None  # the job inspects the decompressed bytes
            self._close_extra()  # and verifies the checksum
        if codec and not self.staged:
            self._discard_current()
            self.staged = True
            self._open_staged(0, None)

    def tick(self) -> None:
        """About once a second: progress to the row, notice a cancel, keep the upload lock."""
        now = time.monotonic()
        if now - self._last_tick < TICK_SECONDS:
            return
        self._last_tick = now
        self.progress.report(self.position, self.length)
        if cancel_requested(self.image_id):
            raise ImportCancelled(_("The import was cancelled."))
        if self._lock is not None:
            self._refresh_lock()

    def _refresh_lock(self) -> None:
        """Keep the upload lock. Redis away: go on receiving and try again at the next tick (nobody can
        take the lock meanwhile). Redis back without it (restarted): take it again."""
        try:
            self._lock.extend(LOCK_SECONDS, replace_ttl=True)
            return
        except REDIS_DOWN:
            logger.warning("Redis does not answer; the upload lock of %s is refreshed later", self.image_id)
            return
        except LockNotOwnedError:
            pass
        except LockError:
            logger.warning("lost the upload lock of %s", self.image_id)
            return
        try:
            taken = self._lock.acquire(blocking=False)
        except REDIS_DOWN:
            return
        if not taken:
            raise UploadBusy(_("Another request took over this image's upload; continue from its offset."))
        logger.info("took the upload lock of %s again after Redis lost it", self.image_id)

    def reset(self) -> None:
        """Discard everything received, including earlier requests' parts, and start again from zero
        (a URL fetch whose server cannot resume)."""
        self._discard_current()
        if self.staged:
            self._file.close()
            self._file = None
            self._hash_pool.shutdown(wait=True)
        self.session.offset = 0
        UploadSession.objects.filter(pk=self.session.pk).update(
            offset=0, receive_state=None, updated_at=timezone.now()
        )
        if not self.staged and self._previous_key:
            ImageReplica.objects.filter(image=self.image, storage=self.image.storage).delete()
            delete_stored(storage=self.image.storage, key=self._previous_key)
        self._open(0)

    def set_length(self, length: int | None) -> None:
        """The length a fetch learned from its server; checked against quota and space before the body."""
        if length is None:
            return
        upload_begin(image_id=self.image_id, length=length, allow_source=self.image.source)
        self.length = length
        self.session.length = length

    # Ending ------------------------------------------------------------------------------------

    def commit(self) -> int:
        """Keep what was received; on the last byte, check the whole file and hand it to its job.

        Returns the committed offset.
        """
        if self.position == self.start:
            self._discard_current()
            self._close(keep_lock=self.finish_in_request)
            with self._finishing():
                if self.length is not None and self.position == self.length and self.length == 0:
                    self._complete()
            return self.position
        final = self.length is not None and self.position == self.length
        with self._finishing():
            try:
                if self.staged:
                    self._commit_staged()
                else:
                    self._commit_stored(final=final)
                self._committed = True
                if final:
                    self._complete()
                else:
                    self._keep_live()
            finally:
                self._close(keep_lock=self.finish_in_request)
        return self.position

    @contextmanager
    def _finishing(self):
        """Around the commit of a request that finishes what it stored (`finish_in_request`): the lock,
        kept by `_close`, is held until the image is available (or failed), then released."""
        try:
            yield
            if self.finish_here and self.finish_in_request:
                # (a refusal fails the image, and cleans up)
                import_finish(image_id=self.image_id, head=self.head)
                error = (
                    Image.objects.filter(pk=self.image_id, status=Image.Status.FAILED)
                    .values_list("error", flat=True)
                    .first()
                )
                if error is not None:  # the request says why, as for a file refused while it arrived
                    raise ImportRefused(error)
        finally:
            self._release_lock()

    @property
    def _finishes_itself(self) -> bool:
        """An image stored as it arrived, which this receiver's job or request makes available itself
        (`continue_in_job`, `finish_in_request`) once the last byte is committed."""
        return (self.continue_in_job is not None or self.finish_in_request) and not self.staged

    @property
    def _holds_head(self) -> bool:
        return not (self.staged or self._head_on_disk) and len(self._head) == min(HEAD_BYTES, self.position)

    @property
    def head(self) -> bytes | None:
        """The file's first HEAD_BYTES (all of a shorter file) when this receiver holds them, for the
        finish's layout check; None when they are only in the staging file (a resumed upload's)."""
        return bytes(self._head) if self._holds_head else None

    def _keep_live(self) -> None:
        """A part of the upload is committed and more will come: leave this process's state to the next
        request (see the module's docstring)."""
        extra = self._extra.drain() if self._extra is not None else None
        if self.staged:
            self._drain_hashing()
            state = _Live(
                self.position, None, None, self._hashers, self.inspector, None, time.monotonic(), extra=extra
            )
        elif self._writer is not None:
            state = _Live(
                self.position,
                self._key,
                self._writer,
                self._hashers,
                self.inspector,
                self._head,
                time.monotonic(),
                self._head_on_disk,
                extra,
            )
            self._writer = None  # the next request's now
        else:
            return
        _live_put(self.image_id, state)

    def finish(self) -> int:
        """The stream ended (a fetch): its length is what arrived. Commits and completes."""
        if self.length is None:
            Image.objects.filter(pk=self.image_id).update(size=self.position, bytes_total=self.position)
            UploadSession.objects.filter(pk=self.session.pk).update(length=self.position)
            self.length = self.position
        elif self.position != self.length:
            raise ImportRefused(
                _("The transfer ended after %(done)d of %(length)d bytes.")
                % {"done": self.position, "length": self.length},
                code="short",
            )
        return self.commit()

    def _drain_hashing(self) -> None:
        while self._hashing:
            self._hashing.popleft().result()

    def _commit_staged(self) -> None:
        self._drain_hashing()
        self._file.flush()
        os.fdatasync(self._file.fileno())
        resumed = 1 if self.start else 0
        self.session.expires_at = _expiry()
        final = self.length is not None and self.position == self.length
        updated = UploadSession.objects.filter(
            pk=self.session.pk, image__status=Image.Status.UPLOADING, offset=self.start
        ).update(
            offset=self.position,
            receive_state=None if final else self._state_blob(),
            bytes_reread=F("bytes_reread") + self._reread,
            staging_path=str(self.staging_path),
            resumes=F("resumes") + resumed,
            expires_at=self.session.expires_at,
            updated_at=timezone.now(),
        )
        if not updated:
            raise ImportCancelled(_("The import was cancelled."))

    def _commit_stored(self, *, final: bool) -> None:
        # A partial commit publishes a checkpoint and keeps the writer open for the next request.
        keep_open = not final and self._writer.can_checkpoint
        try:
            result = self._writer.checkpoint(self._key) if keep_open else self._writer.commit()
        except StorageError as error:
            if not keep_open:
                self._writer = None  # a failed commit has closed it
            refused = ImportRefused(message_of(error), code="storage")
            self.refuse(refused)
            raise refused from error
        state = self._state_blob(self._writer) if keep_open else None
        if not keep_open:
            self._writer = None
        self._result = result
        if not (final and self._finishes_itself and self._holds_head):
            self._write_head()  # (else the finish takes the head from this receiver: see `head`)
        self.session.expires_at = _expiry()
        with transaction.atomic():
            updated = UploadSession.objects.filter(
                pk=self.session.pk, image__status=Image.Status.UPLOADING, offset=self.start
            ).update(
                offset=self.position,
                receive_state=state,
                bytes_reread=F("bytes_reread") + self._reread,
                staging_path=str(self.staging_path),
                resumes=F("resumes") + (1 if self.start else 0),
                expires_at=self.session.expires_at,
                updated_at=timezone.now(),
            )
            replica = {"key": self._key, "state": ImageReplica.State.SYNCING, "size": self.position}
            if updated and not (
                self._previous is not None
                and ImageReplica.objects.filter(pk=self._previous.pk).update(
                    **replica, updated_at=timezone.now()
                )
            ):
                ImageReplica.objects.update_or_create(
                    image=self.image, storage=self.image.storage, defaults=replica
                )
        if not updated:
            self._discard_current()
            delete_stored(storage=self.image.storage, key=self._key)
            raise ImportCancelled(_("The import was cancelled."))
        if self._previous_key and self._previous_key != self._key:
            delete_stored(storage=self.image.storage, key=self._previous_key)

    def _write_head(self) -> None:
        if self._head_on_disk:
            return
        if self.start == 0 or len(self._head) >= HEAD_BYTES or not Path(self.staging_path).exists():
            with open(self.staging_path, "wb") as head:
                head.write(self._head)
            self._head_on_disk = len(self._head) >= HEAD_BYTES

    def _complete(self) -> None:
        if self.session.compression:
            self._complete_compressed()
            return
        try:
            inspection = self.inspector.finish() if self.inspector is not None else None
            if self.staged:
                sha256, md5 = self._sha256.hexdigest(), ""
            else:
                sha256, md5 = self._result.sha256, self._result.md5
            verified = self._verify_checksum(md5=md5, sha256=sha256)
        except ImportRefused as refused:
            self.refuse(refused)
            raise
        details = inspection.as_dict() if inspection is not None else {}
        details.update(md5=md5, sha256=sha256)
        with transaction.atomic():
            UploadSession.objects.filter(pk=self.session.pk).update(
                received_sha256=sha256, inspection=details, updated_at=timezone.now()
            )
            Image.objects.filter(pk=self.image_id, status=Image.Status.UPLOADING).update(
                bytes_done=self.position, progress=100, **verified
            )
            self.finish_here = self._finishes_itself
            import_hand_over(
                image_id=self.image_id,
                kind="convert" if self.staged else "finish",
                enqueue=self.enqueue,
                job_id=(self.continue_in_job or request_job_id()) if self.finish_here else None,
            )

    def _verify_checksum(self, *, md5: str, sha256: str) -> dict:
        """Compare the expected checksum with the bytes received; ImportRefused naming both on a mismatch.
        Returns the row's update (the time it was verified), empty when this receiver verifies nothing."""
        from ..checksums import ChecksumError

        if not self._verifies():
            return {}
        if self._extra is not None:
            actual = self._extra.drain().hexdigest()
        else:
            actual = {"md5": md5, "sha256": sha256}[self.expected.algorithm]
        try:
            self.expected.check(actual)
        except ChecksumError as error:
            raise ImportRefused(error.message, code="checksum") from error
        return {"checksum_verified_at": timezone.now()}

    def _complete_compressed(self) -> None:
        """A compressed upload is in staging as sent: its job decompresses, inspects, hashes and stores it."""
        with transaction.atomic():
            UploadSession.objects.filter(pk=self.session.pk).update(
                received_sha256=self._sha256.hexdigest(), updated_at=timezone.now()
            )
            Image.objects.filter(pk=self.image_id, status=Image.Status.UPLOADING).update(
                bytes_done=self.position, progress=100
            )
            import_hand_over(image_id=self.image_id, kind="decompress", enqueue=self.enqueue)

    def refuse(self, refused: ImportRefused) -> None:
        """The file cannot be imported: fail the image (its leftovers are cleaned up) and stop."""
        self._discard_current()
        import_fail(image_id=self.image_id, message=refused.message)
        self._close()

    def _discard_current(self) -> None:
        if self._writer is not None:
            try:
                self._writer.abort()
            except StorageError:
                logger.warning("could not abort the writer of %s", self.image_id, exc_info=True)
            self._writer = None

    def abort(self) -> None:
        """Drop what this receiver took; what earlier requests committed stays."""
        self._discard_current()
        self._close()

    def _close(self, *, keep_lock: bool = False) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._hash_pool is not None:
            self._hash_pool.shutdown(wait=True, cancel_futures=True)
            self._hash_pool = None
        self._close_extra()
        if not keep_lock:
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            _release(self._lock)
            self._lock = None

    def __enter__(self) -> ImportReceiver:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._committed:
            self.abort()


def receive_body(receiver: ImportReceiver, read, *, nbytes: int) -> int:
    """Feed up to `nbytes` from `read(n)` (a request body) to the receiver and commit. Where `read` has
    a `readinto` (imageconsole.core.request_body) the bytes are received straight into the storage
    writer's buffer.

    A body that ends early (the client went away, the network dropped) keeps what arrived: the client
    resumes from the returned offset.
    """
    remaining = nbytes
    readinto = getattr(read, "readinto", None)
    with receiver:
        while remaining > 0:
            area = receiver.write_area() if readinto is not None else None
            try:
                if area is not None:
                    received = readinto(area[:remaining])
                else:
                    data = read(min(BLOCK_SIZE, remaining))
                    received = len(data)
            except OSError:
                logger.info("upload of %s interrupted after %d bytes", receiver.image_id, nbytes - remaining)
                break
            if not received:
                break
            if area is not None:
                receiver.wrote(area, received)
            else:
                receiver.write(data)
            remaining -= received
        return receiver.commit()


class ImportSink:
    """What a URL fetch writes into (images.fetch's Sink shape: write, reset) for one image.

        sink = ImportSink(image_id)
        fetch(url, sink=sink, check_length=sink.check_length, should_cancel=sink.cancelled, ...)
        sink.finish()          # or sink.abort() when the fetch failed

    The bytes take the same path as an upload's (stored as they arrive, or staged for a conversion).
    """

    def __init__(self, image_id, *, job_id: str | None = None):
        self.receiver = ImportReceiver(image_id=image_id, offset=0, lock=False, continue_in_job=job_id)
        self._cancel_check = CancelCheck(self.receiver.image_id)

    def write(self, data: bytes) -> None:
        self.receiver.write(data)

    @property
    def handed_block_size(self) -> int | None:
        return self.receiver.handed_block_size

    def reset(self) -> None:
        self.receiver.reset()

    def check_length(self, length: int | None) -> None:
        self.receiver.set_length(length)

    def cancelled(self) -> bool:
        return self._cancel_check()

    def finish(self) -> int:
        return self.receiver.finish()

    @property
    def finish_here(self) -> bool:
        """The image was stored as it arrived and the fetch's own job makes it available (ImportReceiver)."""
        return self.receiver.finish_here

    @property
    def head(self) -> bytes | None:
        """The file's first bytes, for the finish (ImportReceiver.head)."""
        return self.receiver.head

    def abort(self) -> None:
        self.receiver.abort()
