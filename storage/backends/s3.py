"""Distributed image storage: an S3-compatible object store (Ceph RGW, MinIO, AWS), through boto3.

Each replica is one object, `imageconsole/replicas/<key>`, beside a small JSON manifest,
`imageconsole/manifests/<key>.json`, with its size, MD5 and SHA256 (S3 keeps no SHA256 of a multipart
object, and a manifest written last marks the replica complete). Nothing outside `imageconsole/` is
touched, so a bucket may be shared with other data.

Uploads go through boto3's transfer manager (multipart above one part, parts in parallel at the storage's
upload concurrency); the writer feeds it through a bounded pipe, and MD5 and SHA256 are computed as the
manager reads the pipe, so the bytes are seen once.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.utils import timezone
from s3transfer.exceptions import CancelledError as TransferCancelled
from s3transfer.subscribers import BaseSubscriber

from imageconsole.core.words import gettext as _

from .base import (
    Cancelled,
    CleanupResult,
    IngestResult,
    ReplicaNotFound,
    ReplicaWriter,
    StorageBackend,
    StorageError,
    Throttled,
    Usage,
    _cancelled_message,
    ordered_map,
)
from .standalone import SPARSE_BLOCK, check_key, write_sparse_copy

MiB = 1024 * 1024
PREFIX = "imageconsole/"
DATA_PREFIX = PREFIX + "replicas/"
MANIFEST_PREFIX = PREFIX + "manifests/"
EXPORT_PREFIX = PREFIX + "exports/"
MANIFEST_FORMAT = "imageconsole-object-1"
MIN_PART = 8 * MiB
# Part size when the size is not known in advance: S3 allows 10,000 parts, so this reaches 640 GiB.
UNKNOWN_SIZE_PART = 64 * MiB
MAX_PARTS = 9000  # below S3's 10,000, for headroom
RANGE_PART = 8 * MiB  # size of the ranged GETs spread over the download concurrency
ABANDONED_UPLOAD_SECONDS = 3600


def part_size_for(expected_size: int | None) -> int:
    if expected_size is None:
        return UNKNOWN_SIZE_PART
    needed = -(-expected_size // MAX_PARTS)
    return max(MIN_PART, -(-needed // MiB) * MiB)


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return _("access denied (%(code)s): check the access key and secret key") % {"code": code}
        if code in ("NoSuchBucket",):
            return _("the bucket does not exist")
        return f"{code}: {info.get('Message', '')}".strip(": ")
    return str(error)


class S3Backend(StorageBackend):
    def __init__(self, storage):
        super().__init__(storage)
        self.bucket = storage.bucket
        self._client = None
        self._client_lock = threading.Lock()

    # Connection
    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                concurrency = max(self.storage.upload_concurrency, self.storage.download_concurrency)
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.storage.endpoint_url or None,
                    region_name=self.storage.region or "us-east-1",
                    aws_access_key_id=self.storage.access_key or None,
                    aws_secret_access_key=self.storage.get_secret_key() or None,
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                        connect_timeout=10,
                        read_timeout=120,
                        retries={"max_attempts": 5, "mode": "standard"},
                        max_pool_connections=2 * concurrency + 4,
                        # Ceph RGW and older MinIO refuse the CRC checksums newer botocore sends by default.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    ),
                )
            return self._client

    def transfer_config(self, *, part_size: int = MIN_PART) -> TransferConfig:
        concurrency = self.storage.upload_concurrency
        config = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        # The manager buffers this many parts from a stream; keep it to what the threads can take.
        config.max_in_memory_upload_chunks = concurrency + 1
        return config

    def data_key(self, key: str) -> str:
        return DATA_PREFIX + check_key(key)

    def manifest_key(self, key: str) -> str:
        return MANIFEST_PREFIX + check_key(key) + ".json"

    def _error(self, error: Exception, doing: str) -> StorageError:
        return StorageError(
            _("Storage “%(name)s” failed to %(doing)s: %(reason)s.")
            % {"name": self.storage.name, "doing": doing, "reason": _reason(error)}
        )

    def test_connection(self) -> None:
        """Reach the endpoint, create the bucket when it does not exist, and write and delete a probe."""
        try:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise
                arguments = {"Bucket": self.bucket}
                if self.storage.region and self.storage.region != "us-east-1":
                    arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.storage.region}
                self.client.create_bucket(**arguments)
            probe = PREFIX + "probe"
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"imageconsole")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(
                _("Cannot use bucket “%(bucket)s” at %(endpoint)s: %(reason)s.")
                % {
                    "bucket": self.bucket,
                    "endpoint": self.storage.endpoint_url or "AWS S3",
                    "reason": _reason(error),
                }
            ) from error

    # Capacity
    def _objects(self, prefix: str) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def usage(self) -> Usage:
        try:
            logical = sum(item["Size"] for item in self._objects(DATA_PREFIX))
            used = logical + sum(
                item["Size"] for prefix in (MANIFEST_PREFIX, EXPORT_PREFIX) for item in self._objects(prefix)
            )
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("list its objects")) from error
        total = self.storage.capacity_bytes
        return Usage(
            total=total,
            used=used,
            free=max(total - used, 0),
            logical=logical,
            dedup_ratio=(logical / used) if used else 1.0,
        )

    # Manifests
    def load_manifest(self, key: str) -> dict:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.manifest_key(key))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ReplicaNotFound(
                    _("Replica %(key)s is not on storage “%(name)s”.")
                    % {"key": key, "name": self.storage.name}
                ) from None
            raise self._error(error, _("read a manifest")) from error
        except BotoCoreError as error:
            raise self._error(error, _("read a manifest")) from error
        return json.loads(body)

    def write_manifest(self, key: str, *, size: int, md5: str, sha256: str) -> None:
        manifest = {
            "format": MANIFEST_FORMAT,
            "key": key,
            "size": size,
            "md5": md5,
            "sha256": sha256,
            "created_at": timezone.now().isoformat(),
        }
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.manifest_key(key),
                Body=json.dumps(manifest).encode(),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("write a manifest")) from error

    # The interface
    def open_writer(self, key: str, *, expected_size: int | None = None) -> ObjectWriter:
        check_key(key)
        self.check_capacity(expected_size or 0)
        return ObjectWriter(self, key, part_size=part_size_for(expected_size))

    def size(self, key: str) -> int:
        return self.load_manifest(key)["size"]

    def exists(self, key: str) -> bool:
        try:
            self.load_manifest(key)
        except ReplicaNotFound:
            return False
        return True

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self.data_key(key), Range=f"bytes={start}-{end - 1}"
            )
            return response["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("read %(key)s") % {"key": key}) from error

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        size = self.size(key)
        end = size if end is None else min(end, size)
        if start < 0 or start > end:
            raise ValueError(f"invalid range {start}-{end} of a {size}-byte replica")
        parts = [(offset, min(offset + RANGE_PART, end)) for offset in range(start, end, RANGE_PART)]
        return ordered_map(
            lambda part: self._get_range(key, *part), parts, concurrency=self.storage.download_concurrency
        )

    def copy_to_path(self, key: str, path: str | Path) -> None:
        size = self.size(key)
        # Parts are SPARSE_BLOCK-aligned, so the zero blocks of the object become holes in the file.
        step = max(RANGE_PART // SPARSE_BLOCK, 1) * SPARSE_BLOCK
        write_sparse_copy(
            path,
            size=size,
            parts=range(0, size, step),
            read_part=lambda offset: (offset, self._get_range(key, offset, min(offset + step, size))),
            concurrency=self.storage.download_concurrency,
        )

    def delete(self, key: str) -> None:
        try:
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={
                    "Objects": [{"Key": self.manifest_key(key)}, {"Key": self.data_key(key)}],
                    "Quiet": True,
                },
            )
            # A writer killed before it completed leaves a multipart upload whose parts are stored.
            data_key = self.data_key(key)
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=data_key):
                for upload in page.get("Uploads", []):
                    if upload["Key"] == data_key:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=data_key, UploadId=upload["UploadId"]
                        )
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("delete %(key)s") % {"key": key}) from error

    def shares_endpoint_with(self, other: StorageBackend) -> bool:
        return (
            isinstance(other, S3Backend)
            and (self.storage.endpoint_url or "").rstrip("/")
            == (other.storage.endpoint_url or "").rstrip("/")
            and (self.storage.region or "us-east-1") == (other.storage.region or "us-east-1")
        )

    def copy_to(self, key, target, *, progress=None, should_cancel=None) -> IngestResult:
        if not self.shares_endpoint_with(target):
            return super().copy_to(key, target, progress=progress, should_cancel=should_cancel)
        manifest = self.load_manifest(key)
        target.check_capacity(manifest["size"])
        report = Throttled(progress)
        # The target's credentials must be able to read the source bucket; when they cannot, the bytes
        # are streamed through this process instead.
        try:
            manager = create_transfer_manager(
                target.client, target.transfer_config(part_size=part_size_for(manifest["size"]))
            )
            with manager:
                counter = _Progress()
                future = manager.copy(
                    copy_source={"Bucket": self.bucket, "Key": self.data_key(key)},
                    bucket=target.bucket,
                    key=target.data_key(key),
                    source_client=self.client,
                    subscribers=[counter],
                )
                # Progress is reported from this thread: callers write it to the database.
                while not future.done():
                    time.sleep(0.2)
                    report(counter.done)
                    if should_cancel is not None and should_cancel():
                        future.cancel()
                        break
                future.result()
        except TransferCancelled:
            with suppress(ClientError, BotoCoreError):
                target.client.delete_object(Bucket=target.bucket, Key=target.data_key(key))
            raise Cancelled(_cancelled_message()) from None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("AccessDenied", "403"):
                return super().copy_to(key, target, progress=progress, should_cancel=should_cancel)
            raise target._error(error, _("copy %(key)s") % {"key": key}) from error
        except BotoCoreError as error:
            raise target._error(error, _("copy %(key)s") % {"key": key}) from error
        target.write_manifest(key, size=manifest["size"], md5=manifest["md5"], sha256=manifest["sha256"])
        report(manifest["size"], final=True)
        return IngestResult(
            key=key,
            size=manifest["size"],
            md5=manifest["md5"],
            sha256=manifest["sha256"],
            bytes_stored=manifest["size"],
        )

    def _presign(self, name: str, *, expires_in: int, filename: str | None, method: str) -> str:
        # The method is part of what is signed: a URL signed for GET answers a HEAD with 403.
        params = {"Bucket": self.bucket, "Key": name}
        if filename:
            params["ResponseContentDisposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
        operation = "head_object" if method.upper() == "HEAD" else "get_object"
        return self.client.generate_presigned_url(operation, Params=params, ExpiresIn=int(expires_in))

    def presigned_url(
        self, key: str, *, expires_in: int, filename: str | None = None, method: str = "GET"
    ) -> str:
        return self._presign(self.data_key(key), expires_in=expires_in, filename=filename, method=method)

    # Exports: one object each under imageconsole/exports/, served by presigned URL
    def export_object(self, key: str) -> str:
        return EXPORT_PREFIX + check_key(key)

    def export_put(self, key, source, *, progress=None, should_cancel=None) -> int:
        source = Path(source)
        try:
            size = source.stat().st_size
            self.check_capacity(size)
            counter = _Progress()
            report = Throttled(progress)
            manager = create_transfer_manager(
                self.client, self.transfer_config(part_size=part_size_for(size))
            )
            with manager:
                future = manager.upload(
                    str(source), self.bucket, self.export_object(key), subscribers=[counter]
                )
                while not future.done():
                    time.sleep(0.2)
                    report(counter.done)
                    if should_cancel is not None and should_cancel():
                        future.cancel()
                        break
                future.result()
            report(size, final=True)
            return size
        except TransferCancelled:
            self.export_delete(key)
            raise Cancelled(_cancelled_message()) from None
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("upload %(key)s") % {"key": key}) from error
        finally:
            with suppress(FileNotFoundError):
                source.unlink()

    def export_size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.export_object(key))["ContentLength"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ReplicaNotFound(
                    _("Export %(key)s is not on storage “%(name)s”.")
                    % {"key": key, "name": self.storage.name}
                ) from None
            raise self._error(error, _("read %(key)s") % {"key": key}) from error
        except BotoCoreError as error:
            raise self._error(error, _("read %(key)s") % {"key": key}) from error

    def export_read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        size = self.export_size(key)
        end = size if end is None else min(end, size)
        parts = [(offset, min(offset + RANGE_PART, end)) for offset in range(start, end, RANGE_PART)]
        return ordered_map(
            lambda part: self._get_object_range(self.export_object(key), *part),
            parts,
            concurrency=self.storage.download_concurrency,
        )

    def _get_object_range(self, name: str, start: int, end: int) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name, Range=f"bytes={start}-{end - 1}")
            return response["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("read %(key)s") % {"key": name}) from error

    def export_delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.export_object(key))
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("delete %(key)s") % {"key": key}) from error

    def export_url(
        self, key: str, *, expires_in: int, filename: str | None = None, method: str = "GET"
    ) -> str:
        return self._presign(self.export_object(key), expires_in=expires_in, filename=filename, method=method)

    def cleanup(self, *, referenced_keys: set[str], grace_seconds: float) -> CleanupResult:
        now = timezone.now()
        cutoff = now - timedelta(seconds=grace_seconds)
        freed = replicas = blobs = 0
        try:
            manifests = {
                item["Key"][len(MANIFEST_PREFIX) : -len(".json")]: item
                for item in self._objects(MANIFEST_PREFIX)
            }
            data = {item["Key"][len(DATA_PREFIX) :]: item for item in self._objects(DATA_PREFIX)}
            doomed = []
            for key in set(manifests) | set(data):
                if key in referenced_keys:
                    continue
                items = [item for item in (manifests.get(key), data.get(key)) if item]
                if all(item["LastModified"] < cutoff for item in items):
                    doomed.extend(items)
                    freed += sum(item["Size"] for item in items)
                    replicas += 1
            for start in range(0, len(doomed), 1000):
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={
                        "Objects": [{"Key": item["Key"]} for item in doomed[start : start + 1000]],
                        "Quiet": True,
                    },
                )
            # Multipart uploads a killed worker left behind; their parts are billed but never listed.
            upload_cutoff = min(cutoff, now - timedelta(seconds=ABANDONED_UPLOAD_SECONDS))
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < upload_cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        blobs += 1
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, _("clean up")) from error
        return CleanupResult(bytes_freed=freed, replicas_removed=replicas, blobs_removed=blobs)


class _Progress(BaseSubscriber):
    def __init__(self):
        self.done = 0
        self.lock = threading.Lock()

    def on_progress(self, future, bytes_transferred, **kwargs):
        with self.lock:
            self.done += bytes_transferred


class _Pipe(io.RawIOBase):
    """The read end the transfer manager consumes; hashes what it hands out, in order."""

    def __init__(self, *, depth: int):
        super().__init__()
        self.blocks: queue.Queue = queue.Queue(maxsize=depth)
        self.pending = memoryview(b"")
        self.finished = False
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self.pending:
                if self.finished:
                    break
                item = self.blocks.get()
                if item is None:
                    self.finished = True
                    break
                if isinstance(item, BaseException):
                    raise item
                self.pending = memoryview(item)
            take = self.pending if size < 0 else self.pending[: size - len(out)]
            out += take
            self.pending = self.pending[len(take) :]
        data = bytes(out)
        self.md5.update(data)
        self.sha256.update(data)
        return data


class ObjectWriter(ReplicaWriter):
    def __init__(self, backend: S3Backend, key: str, *, part_size: int):
        self.backend = backend
        self.key = key
        self._size = 0
        self._closed = False
        self._pipe = _Pipe(depth=8)
        self._manager = create_transfer_manager(backend.client, backend.transfer_config(part_size=part_size))
        self._future = self._manager.upload(self._pipe, backend.bucket, backend.data_key(key))

    @property
    def bytes_written(self) -> int:
        return self._size

    def _put(self, item) -> None:
        while True:
            try:
                self._pipe.blocks.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._future.done():
                    self._future.result()  # raises the upload's error
                    raise StorageError("the upload ended before its data") from None

    def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise StorageError("write() after commit() or abort()")
        if not data:
            return
        try:
            self._put(bytes(data))
        except (ClientError, BotoCoreError) as error:
            raise self.backend._error(error, _("upload %(key)s") % {"key": self.key}) from error
        self._size += len(data)

    def commit(self) -> IngestResult:
        if self._closed:
            raise StorageError("commit() after commit() or abort()")
        try:
            self._put(None)
            self._future.result()
        except (ClientError, BotoCoreError) as error:
            raise self.backend._error(error, _("upload %(key)s") % {"key": self.key}) from error
        result = IngestResult(
            key=self.key,
            size=self._size,
            md5=self._pipe.md5.hexdigest(),
            sha256=self._pipe.sha256.hexdigest(),
            bytes_stored=self._size,
        )
        self.backend.write_manifest(self.key, size=result.size, md5=result.md5, sha256=result.sha256)
        self._closed = True
        self._manager.shutdown()
        return result

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The manager aborts its multipart upload when its read fails; a completed object is deleted.
        with suppress(Exception):
            self._put(Cancelled(_cancelled_message()))
        try:
            self._future.result()
            completed = True
        except Exception:  # noqa: BLE001 - the upload failed or was cancelled: nothing was completed
            completed = False
        with suppress(Exception):
            self._manager.shutdown(cancel=True)
        if completed:  # the object is complete but its manifest was never written
            with suppress(ClientError, BotoCoreError):
                self.backend.client.delete_object(
                    Bucket=self.backend.bucket, Key=self.backend.data_key(self.key)
                )
