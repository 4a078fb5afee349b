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
