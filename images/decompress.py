"""Compressed images (gzip, xz, zstd, bzip2): recognised by their magic bytes, decompressed as a stream.

Distributions publish cloud images compressed (`*.raw.xz`, `*.img.gz`, `*.qcow2.zst`). The bytes that
arrive go through a `Decompressor` that hands the decompressed bytes on in pieces of at most
`OUTPUT_BLOCK`, whatever the ratio, so inspection, hashing and storing see the image itself in the same
single pass, and memory stays constant. The file name is only a hint: the first bytes decide.

Decompression bombs are bounded where the bytes come out, before they are handed on: `limit` (the
target size, the tenant's quota headroom, the storage's free space) applies to the decompressed bytes
as they arrive, and `max_ratio` refuses a stream that expands absurdly once past `RATIO_FLOOR`.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable

from django.template.defaultfilters import filesizeformat

from imageconsole.core.words import gettext as _

OUTPUT_BLOCK = 1 << 20
SNIFF_BYTES = 6
# Below this many decompressed bytes the ratio is not judged: a disk's first megabytes are often zeros.
RATIO_FLOOR = 64 << 20

CODECS = ("gzip", "xz", "zstd", "bzip2")
SUFFIXES = {".gz": "gzip", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bzip2"}


class DecompressError(Exception):
    """The compressed stream cannot be imported; the message says why (for the image's error)."""

    def __init__(self, message: str, *, code: str = "compressed"):
        super().__init__(message)
        self.message = message
        self.code = code


def detect(head: bytes) -> str | None:
    """The codec whose magic bytes `head` starts with (at least SNIFF_BYTES of them), or None."""
    if head[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and len(head) > 3:
        return "bzip2"
    return None


def codec_hint(filename: str) -> str | None:
    """The codec a file name suggests (`.qcow2.xz`), for messages only: the magic bytes decide."""
    lowered = filename.lower()
    for suffix, codec in SUFFIXES.items():
        if lowered.endswith(suffix):
            return codec
    return None


def strip_suffix(filename: str) -> str:
    lowered = filename.lower()
    for suffix in SUFFIXES:
        if lowered.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


class _Members:
    """gzip, xz and bzip2 through the standard library, one member (stream) after another: pigz, pbzip2
    and `xz -T` write several. Zero bytes between or after members are padding."""

    def __init__(self, codec: str):
        self.codec = codec
        self._object = None
        self.complete = True  # no member begun, or the last one ended

    def _new(self):
        if self.codec == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.codec == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return bz2.BZ2Decompressor()

    def feed(self, data: bytes, emit: Callable[[bytes], None]) -> None:
        while True:
            if self._object is None:
                data = data.lstrip(b"\0")
                if not data:
                    return
                self._object = self._new()
                self.complete = False
            out = self._step(data)
            if out:
                emit(out)
            if self._object.eof:
                data = self._object.unused_data
                self._object = None
                self.complete = True
                continue
            if self.codec == "gzip":
                # zlib keeps the input it did not reach; a full output block may have more behind it.
                data = self._object.unconsumed_tail
                if not data and len(out) < OUTPUT_BLOCK:
                    return
            else:
                data = b""
                if self._object.needs_input:
                    return

    def _step(self, data: bytes) -> bytes:
        try:
            return self._object.decompress(data, OUTPUT_BLOCK)
        except (zlib.error, lzma.LZMAError, OSError, EOFError) as error:
            raise DecompressError(
                _("The %(codec)s stream is damaged (%(reason)s).") % {"codec": self.codec, "reason": error},
                code="damaged",
            ) from error


class _ZstdFrames:
    """Follows the zstd frame format (RFC 8878) as the compressed bytes pass, without decompressing, to
    tell whether the stream ends between frames: zstandard's streaming writer does not say where a frame
    ends. Only headers are read (a frame header, each block's 3-byte header, a skippable frame's length);
    block contents are skipped by their sizes, so the cost is a few steps per 128 KiB block."""

    MAGIC = 0xFD2FB528

    def __init__(self):
        self._state = "magic"
        self._need = 4  # bytes the current state still needs (or skips)
        self._held = b""
        self._checksum = False
        self._last = False
        self.complete = True

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        at = 0
        while at < len(view):
            if self._state in ("skip", "content"):
                step = min(self._need, len(view) - at)
                at += step
                self._need -= step
                if self._need == 0:
                    self._after_skip()
                continue
            step = min(self._need - len(self._held), len(view) - at)
            self._held += bytes(view[at : at + step])
            at += step
            if len(self._held) == self._need:
                field, self._held = self._held, b""
                self._parse(field)

    def _after_skip(self) -> None:
        if self._state == "skip":  # a skippable frame's data, or a frame's checksum
            self._frame_end()
        else:  # a block's content
            self._next_block()

    def _next_block(self) -> None:
        if self._last:
            if self._checksum:
                self._state, self._need = "skip", 4
            else:
                self._frame_end()
        else:
            self._state, self._need = "block", 3

    def _frame_end(self) -> None:
        self._state, self._need = "magic", 4
        self.complete = True

    def _parse(self, field: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(field, "little")
            self.complete = False
            if magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skip_size", 4
            elif magic == self.MAGIC:
                self._state, self._need = "descriptor", 1
            else:
                raise DecompressError(
                    _("The %(codec)s stream is damaged (%(reason)s).")
                    % {"codec": "zstd", "reason": "unknown frame magic"},
                    code="damaged",
                )
        elif self._state == "skip_size":
            self._state, self._need = "skip", int.from_bytes(field, "little")
            if self._need == 0:
                self._frame_end()
        elif self._state == "descriptor":
            descriptor = field[0]
            fcs_flag, single = descriptor >> 6, bool(descriptor & 0x20)
            self._checksum = bool(descriptor & 0x04)
            dictionary = (0, 1, 2, 4)[descriptor & 0x03]
            content_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
            rest = (0 if single else 1) + dictionary + content_size
            if rest:
                self._state, self._need = "header_rest", rest
            else:
                self._state, self._need = "block", 3
        elif self._state == "header_rest":
            self._state, self._need = "block", 3
        elif self._state == "block":
            header = int.from_bytes(field, "little")
            self._last = bool(header & 1)
            kind, size = (header >> 1) & 3, header >> 3
            content = 1 if kind == 1 else size
            if content:
                self._state, self._need = "content", content
            else:
                self._next_block()


class _Zstd:
    """zstandard's stream writer hands its output to `emit` in pieces of OUTPUT_BLOCK, across frames;
    `_ZstdFrames` beside it tells whether the stream ended between frames."""

    def __init__(self):
        import zstandard

        self._zstandard = zstandard
        self._emit: Callable[[bytes], None] | None = None
        self._writer = zstandard.ZstdDecompressor().stream_writer(
            self, write_size=OUTPUT_BLOCK, closefd=False
        )
        self._frames = _ZstdFrames()

    @property
    def complete(self) -> bool:
        return self._frames.complete

    def write(self, data: bytes) -> int:  # the stream writer's target
        self._emit(bytes(data))
        return len(data)

    def feed(self, data: bytes, emit: Callable[[bytes], None]) -> None:
        self._emit = emit
        self._frames.feed(data)
        try:
            self._writer.write(data)
        except self._zstandard.ZstdError as error:
            raise DecompressError(
                _("The %(codec)s stream is damaged (%(reason)s).") % {"codec": "zstd", "reason": error},
                code="damaged",
            ) from error


class Decompressor:
    """Decompresses one stream, handing the decompressed bytes to `emit` and refusing a bomb.

    `limit`: the most decompressed bytes the import may bring (None: no limit); `max_ratio`: the most
    decompressed bytes per compressed byte once past RATIO_FLOOR (0: no limit).
    """

    def __init__(
        self,
        codec: str,
        *,
        emit: Callable[[bytes], None],
        limit: int | None,
        max_ratio: float,
        hasher=None,
    ):
        """`hasher`: a hashlib object that sees the compressed bytes as they are fed (a checksum of the
        file as sent, images.checksums)."""
        if codec not in CODECS:
            raise ValueError(codec)
        self.codec = codec
        self.hasher = hasher
        self.limit = limit
        self.max_ratio = max_ratio
        self.compressed = 0
        self.decompressed = 0
        self._emit = emit
        self._engine = _Zstd() if codec == "zstd" else _Members(codec)

    def feed(self, data: bytes) -> None:
        self.compressed += len(data)
        if self.hasher is not None:
            self.hasher.update(data)
        self._engine.feed(data, self._take)

    def _take(self, data: bytes) -> None:
        after = self.decompressed + len(data)
        if self.limit is not None and after > self.limit:
            raise DecompressError(
                _(
                    "The %(codec)s file expands to more than the %(limit)s this import may use (target size, "
                    "quota and free space); the import was stopped after %(compressed)s of compressed data."
                )
                % {
                    "codec": self.codec,
                    "limit": filesizeformat(self.limit),
                    "compressed": filesizeformat(self.compressed),
                },
                code="too_large",
            )
        if self.max_ratio and after > RATIO_FLOOR and after > self.max_ratio * self.compressed:
            raise DecompressError(
                _(
                    "The %(codec)s file expands more than %(ratio)d times (%(compressed)s became more than "
                    "%(size)s): this looks like a decompression bomb, so the import was stopped."
                )
                % {
                    "codec": self.codec,
                    "ratio": self.max_ratio,
                    "compressed": filesizeformat(self.compressed),
                    "size": filesizeformat(after),
                },
                code="ratio",
            )
        self.decompressed = after
        self._emit(data)

    def finish(self) -> None:
        """The compressed stream ended: refuse one cut off in the middle of a member."""
        if not self._engine.complete:
            raise DecompressError(
                _("The %(codec)s stream ends in the middle: the file is incomplete.") % {"codec": self.codec},
                code="truncated",
            )


class DecompressingSink:
    """A fetch's sink (images.fetch's shape: write, reset) that looks at the first bytes: a compressed
    stream is decompressed on its way to `target` (which must have write and reset); anything else goes
    through untouched.

    A fetch that resumes after a dropped connection keeps feeding the same decompressor; one that must
    start again from zero (`reset`) gets a new one. `on_detect(codec)` runs once the codec is known
    (None for an uncompressed file), before any byte reaches `target`.
    """

    def __init__(
        self,
        target,
        *,
        limit: Callable[[], int | None],
        max_ratio: float,
        on_detect=None,
        hash_sent: str | None = None,
    ):
        """`hash_sent`: an algorithm (images.checksums) to hash a compressed file's bytes as sent with;
        `sent_digest()` gives it after `finish()` (None when the file was not compressed)."""
        self.target = target
        self.hash_sent = hash_sent
        self._limit = limit
        self.max_ratio = max_ratio
        self._on_detect = on_detect
        self._head = b""
        self.decided = False
        self.decompressor: Decompressor | None = None

    @property
    def codec(self) -> str | None:
        return self.decompressor.codec if self.decompressor is not None else None

    @property
    def compressed_size(self) -> int | None:
        return self.decompressor.compressed if self.decompressor is not None else None

    def write(self, data: bytes) -> None:
        if not self.decided:
            self._head += data
            if len(self._head) < SNIFF_BYTES:
                return
            data, self._head = self._head, b""
            self._decide(data)
        if self.decompressor is not None:
            self.decompressor.feed(data)
        else:
            self.target.write(data)

    @property
    def handed_block_size(self) -> int | None:
        """The target's (images.fetch hands buffers over in such blocks), until a decompressor is between."""
        return None if self.decompressor is not None else getattr(self.target, "handed_block_size", None)

    def _decide(self, head: bytes) -> None:
        codec = detect(head)
        self.decided = True
        if self._on_detect is not None:
            self._on_detect(codec)
        if codec is not None:
            from .checksums import new_hasher

            self.decompressor = Decompressor(
                codec,
                emit=self.target.write,
                limit=self._limit(),
                max_ratio=self.max_ratio,
                hasher=new_hasher(self.hash_sent) if self.hash_sent else None,
            )

    def reset(self) -> None:
        self._head = b""
        self.decided = False
        self.decompressor = None
        self.target.reset()

    def finish(self) -> None:
        """The transfer ended: pass on a file shorter than the sniffed bytes, end the stream."""
        if not self.decided:
            head, self._head = self._head, b""
            self._decide(head)
            if head and self.decompressor is None:
                self.target.write(head)
            elif head:
                self.decompressor.feed(head)
        if self.decompressor is not None:
            self.decompressor.finish()

    def sent_digest(self) -> str | None:
        """The hex digest of the compressed bytes as sent (with `hash_sent`), None if not compressed."""
        if self.decompressor is None or self.decompressor.hasher is None:
            return None
        return self.decompressor.hasher.hexdigest()
