"""The stream decompressor alone: codecs by magic bytes, bounded output, bombs stopped at the limit."""

import lzma
import os

import pytest

from images.decompress import OUTPUT_BLOCK, DecompressError, DecompressingSink, detect

from .conftest import compress

MiB = 1024 * 1024


class Counting:
    """A sink that keeps a hash-free count of what it took, and its largest piece."""

    def __init__(self):
        self.data = bytearray()
        self.largest = 0
        self.resets = 0

    def write(self, data):
        self.data += data
        self.largest = max(self.largest, len(data))

    def reset(self):
        self.resets += 1
        self.data.clear()


@pytest.mark.parametrize("codec", ["gzip", "xz", "zstd", "bzip2"])
def test_each_tool_output_is_recognised_and_decompressed_in_bounded_pieces(codec, tmp_path):
    plain = tmp_path / "disk.raw"
    plain.write_bytes(os.urandom(MiB) + bytes(6 * MiB) + os.urandom(12345))
    packed = compress(plain, codec).read_bytes()
    assert detect(packed[:6]) == codec
    target = Counting()
    sink = DecompressingSink(target, limit=lambda: None, max_ratio=1000)
    for offset in range(0, len(packed), 100_000):
        sink.write(packed[offset : offset + 100_000])
    sink.finish()
    assert bytes(target.data) == plain.read_bytes()
    assert target.largest <= OUTPUT_BLOCK
    assert sink.compressed_size == len(packed)


def test_an_uncompressed_file_goes_through_untouched():
    target = Counting()
    sink = DecompressingSink(target, limit=lambda: None, max_ratio=1000)
    sink.write(b"QFI")  # fewer bytes than the magic needs: held until more arrive
    sink.write(b"\xfb" + b"x" * 100)
    sink.finish()
    assert bytes(target.data) == b"QFI\xfb" + b"x" * 100 and sink.codec is None


def test_a_bomb_stops_before_more_than_the_limit_reaches_the_sink():
    bomb = lzma.compress(bytes(64 * MiB), preset=0) * 160  # ~10 GiB of zeros
    target = Counting()
    limit = 100 * MiB + 5
    sink = DecompressingSink(target, limit=lambda: limit, max_ratio=0)
    with pytest.raises(DecompressError, match="expands to more than"):
        for offset in range(0, len(bomb), MiB):
            sink.write(bomb[offset : offset + MiB])
    assert limit - OUTPUT_BLOCK < len(target.data) <= limit


def test_a_truncated_stream_is_refused(tmp_path):
    plain = tmp_path / "disk.raw"
    plain.write_bytes(os.urandom(2 * MiB))
    packed = compress(plain, "xz").read_bytes()
    sink = DecompressingSink(Counting(), limit=lambda: None, max_ratio=1000)
    sink.write(packed[: len(packed) // 2])
    with pytest.raises(DecompressError, match="incomplete"):
        sink.finish()


def test_reset_starts_a_new_decompressor_from_zero(tmp_path):
    plain = tmp_path / "disk.raw"
    plain.write_bytes(os.urandom(2 * MiB))
    packed = compress(plain, "gzip").read_bytes()
    target = Counting()
    sink = DecompressingSink(target, limit=lambda: None, max_ratio=1000)
    sink.write(packed[: len(packed) // 3])
    sink.reset()
    sink.write(packed)
    sink.finish()
    assert target.resets == 1 and bytes(target.data) == plain.read_bytes()


def _zstd(path, *options):
    import subprocess

    target = path.with_name(path.name + "".join(options) + ".zst")
    with open(target, "wb") as out:
        subprocess.run(["zstd", "-c", *options, str(path)], stdout=out, check=True)
    return target.read_bytes()


@pytest.mark.parametrize("codec", ["gzip", "xz", "zstd", "bzip2"])
@pytest.mark.parametrize("cut", [0.5, 0.999, -1])
def test_a_stream_cut_anywhere_is_refused_as_incomplete(codec, cut, tmp_path):
    plain = tmp_path / "disk.raw"
    plain.write_bytes(os.urandom(MiB) + bytes(3 * MiB))
    packed = compress(plain, codec).read_bytes()
    end = len(packed) - 1 if cut == -1 else int(len(packed) * cut)
    sink = DecompressingSink(Counting(), limit=lambda: None, max_ratio=1000)
    for offset in range(0, end, 65_537):
        sink.write(packed[offset : min(end, offset + 65_537)])
    with pytest.raises(DecompressError, match="incomplete"):
        sink.finish()


def test_zstd_frames_in_any_shape_end_complete(tmp_path):
    """Several frames (concatenated files), a skippable frame (pzstd writes them), with and without a
    content checksum and a content size, fed in pieces that split every header."""
    import struct

    first, second = tmp_path / "a.raw", tmp_path / "b.raw"
    first.write_bytes(os.urandom(300_000) + bytes(MiB))
    second.write_bytes(os.urandom(1000))
    skippable = struct.pack("<II", 0x184D2A5E, 5) + b"hello"
    packed = (
        _zstd(first)
        + skippable
        + _zstd(second, "--no-check")
        + _zstd(first, "--no-check", "--no-content-size", "-19")
    )
    target = Counting()
    sink = DecompressingSink(target, limit=lambda: None, max_ratio=1000)
    for offset in range(0, len(packed), 7):
        sink.write(packed[offset : offset + 7])
    sink.finish()
    assert bytes(target.data) == first.read_bytes() + second.read_bytes() + first.read_bytes()

    # The same cut inside the skippable frame, or just after a frame's magic, is incomplete.
    for end in (len(_zstd(first)) + 6, len(_zstd(first)) + len(skippable) + 4):
        sink = DecompressingSink(Counting(), limit=lambda: None, max_ratio=1000)
        sink.write(packed[:end])
        with pytest.raises(DecompressError, match="incomplete"):
            sink.finish()
