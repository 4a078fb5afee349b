"""HTTP range requests (RFC 9110 sections 13.1.5, 14) for any stream of known size, in constant memory.

    response = ranged_response(
        request,
        size=...,                       # bytes in the representation
        etag='"<sha256>"',              # a strong ETag, quoted
        last_modified=datetime,         # or None
        content_type="application/octet-stream",
        filename="disk.qcow2",          # Content-Disposition: attachment (RFC 6266, UTF-8 names too)
        read=lambda start, stop: ...,   # an iterable of the bytes [start, stop), e.g. a storage's read_range
        path=None,                      # or a local file: served by FileResponse, so the server may sendfile
    )

What it answers: `Accept-Ranges: bytes` always; no Range (or one it ignores) -> 200 with the whole body;
one range -> 206 with `Content-Range`; several -> 206 `multipart/byteranges` (overlapping or adjacent
ranges are merged first, and more than MAX_RANGES ranges get the whole body, as RFC 9110 allows); none
satisfiable -> 416 with `Content-Range: bytes */size`. `If-Range` (an ETag, compared strongly, or a date,
compared exactly) turns a stale range request into a 200; `If-None-Match` / `If-Modified-Since` give 304.
HEAD answers the headers GET would, without a body. Nothing here knows about images or storages.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

MAX_RANGES = 64
BLOCK = 1024 * 1024

Reader = Callable[[int, int], Iterable[bytes]]


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int  # exclusive

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


class RangeNotSatisfiable(Exception):
    """No range of the header lies within the representation."""


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """The ranges of a `Range` header to serve, in the order asked (merged where they overlap), or None
    to serve the whole representation (no header, another unit, bad syntax, too many ranges).
    Raises RangeNotSatisfiable when the header is valid but no range lies within `size` bytes."""
    if not header:
        return None
    unit, _sep, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    ranges = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        first, dash, last = item.partition("-")
        first, last = first.strip(), last.strip()
        if (
            not dash
            or not (first.isdigit() or (not first and last.isdigit()))
            or (last and not last.isdigit())
        ):
            return None
        if not first:  # a suffix: the last N bytes
            length = int(last)
            if length == 0 or size == 0:
                continue
            ranges.append(ByteRange(max(size - length, 0), size))
            continue
        start = int(first)
        if last and int(last) < start:
            return None
        if start >= size:
            continue
        stop = size if not last else min(int(last) + 1, size)
        ranges.append(ByteRange(start, stop))
    if not ranges:
        raise RangeNotSatisfiable
    if len(ranges) > MAX_RANGES:
        return None
    return _merge(ranges)


def _merge(ranges: list[ByteRange]) -> list[ByteRange]:
    ordered = sorted(ranges, key=lambda r: r.start)
    if all(a.stop < b.start for a, b in zip(ordered, ordered[1:], strict=False)):
        return ranges  # disjoint: keep the client's order
    merged = [ordered[0]]
    for item in ordered[1:]:
        if item.start <= merged[-1].stop:
            merged[-1] = ByteRange(merged[-1].start, max(merged[-1].stop, item.stop))
        else:
            merged.append(item)
    return merged


def _etag_matches(header: str, etag: str, *, weak: bool) -> bool:
    tags = [tag.strip() for tag in header.split(",")]
    if "*" in tags:
        return True
    if weak:
        plain = etag.removeprefix("W/")
        return any(tag.removeprefix("W/") == plain for tag in tags)
    return not etag.startswith("W/") and etag in tags


def if_range_allows(request, *, etag: str | None, last_modified: datetime | None) -> bool:
    """True when the request's ranges may be served: no If-Range, or one that names this version."""
    value = request.headers.get("If-Range")
    if not value:
        return True
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return etag is not None and not value.startswith("W/") and value == etag
    when = parse_http_date_safe(value)
    return when is not None and last_modified is not None and when == int(last_modified.timestamp())


def _not_modified(request, *, etag: str | None, last_modified: datetime | None) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    none_match = request.headers.get("If-None-Match")
    if none_match:
        return etag is not None and _etag_matches(none_match, etag, weak=True)
    since = parse_http_date_safe(request.headers.get("If-Modified-Since") or "")
    return since is not None and last_modified is not None and int(last_modified.timestamp()) <= since


class _FileSlice:
    """The bytes [start, stop) of an open file, read in order. It has fileno() and its offset sits at the
    next byte, so a WSGI server's sendfile (gunicorn) sends exactly Content-Length bytes from it."""

    def __init__(self, path, start: int, stop: int):
        self._file = open(path, "rb")  # noqa: SIM115 - closed by the response
        self._file.seek(start)
        self._left = stop - start

    def fileno(self) -> int:
        return self._file.fileno()

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


class _SliceResponse(FileResponse):
    block_size = BLOCK


def _file_reader(path) -> Reader:
    def read(start: int, stop: int) -> Iterator[bytes]:
        fd = os.open(path, os.O_RDONLY)
        try:
            offset = start
            while offset < stop:
                data = os.pread(fd, min(BLOCK, stop - offset), offset)
                if not data:
                    raise OSError(f"{path} ended at {offset}, before {stop}")
                offset += len(data)
                yield data
        finally:
            os.close(fd)

    return read


def _multipart(ranges, size, content_type, read: Reader, boundary: str) -> tuple[int, Iterator[bytes]]:
    heads = []
    for index, item in enumerate(ranges):
        head = (
            ("\r\n" if index else "")
            + f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {item.content_range(size)}\r\n\r\n"
        ).encode("latin-1")
        heads.append(head)
    tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
    length = sum(len(h) for h in heads) + sum(r.length for r in ranges) + len(tail)

    def body():
        for head, item in zip(heads, ranges, strict=True):
            yield head
            yield from read(item.start, item.stop)
        yield tail

    return length, body()


def ranged_response(
    request,
    *,
    size: int,
    etag: str | None,
    last_modified: datetime | None,
    content_type: str = "application/octet-stream",
    filename: str | None = None,
    read: Reader | None = None,
    path=None,
    extra_headers: dict | None = None,
) -> HttpResponse:
    """Answer a GET or HEAD for a representation of `size` bytes read by `read(start, stop)` or from the
    local file `path` (see the module's docstring). A caller that logs what was served reads
    `response.status_code` and `response.served_ranges` (None: the whole body; []: nothing, a 416)."""
    if read is None and path is None:
        raise ValueError("give read or path")
    if read is None:
        read = _file_reader(path)
    head = request.method == "HEAD"
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private"}
    if etag:
        headers["ETag"] = etag
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified.timestamp())
    if filename:
        headers["Content-Disposition"] = content_disposition_header(True, filename)
    headers.update(extra_headers or {})

    if _not_modified(request, etag=etag, last_modified=last_modified):
        response = HttpResponse(status=304)
        for name in ("ETag", "Last-Modified", "Cache-Control"):
            if name in headers:
                response[name] = headers[name]
        response.served_ranges = None
        return response

    ranges = None
    if "Range" in request.headers and if_range_allows(request, etag=etag, last_modified=last_modified):
        try:
            ranges = parse_range(request.headers["Range"], size)
        except RangeNotSatisfiable:
            response = HttpResponse(status=416, content_type="text/plain; charset=utf-8")
            response["Content-Range"] = f"bytes */{size}"
            for name in ("Accept-Ranges", "ETag", "Last-Modified"):
                if name in headers:
                    response[name] = headers[name]
            response.served_ranges = []
            return response

    if ranges is not None and len(ranges) > 1:
        boundary = secrets.token_hex(16)
        length, body = _multipart(ranges, size, content_type, read, boundary)
        response = StreamingHttpResponse(
            iter(()) if head else body,
            status=206,
            content_type=f"multipart/byteranges; boundary={boundary}",
        )
        response["Content-Length"] = str(length)
    else:
        start, stop = (ranges[0].start, ranges[0].stop) if ranges else (0, size)
        if head:
            response = HttpResponse(status=206 if ranges else 200, content_type=content_type)
        elif path is not None:
            response = _SliceResponse(_FileSlice(path, start, stop), status=206 if ranges else 200)
            response["Content-Type"] = content_type
        else:
            response = StreamingHttpResponse(
                read(start, stop), status=206 if ranges else 200, content_type=content_type
            )
        response["Content-Length"] = str(stop - start)
        if ranges:
            response["Content-Range"] = ranges[0].content_range(size)
    for name, value in headers.items():
        response[name] = value
    response.served_ranges = ranges
    return response
