"""A VHDX's allocation read from its own block allocation table (images.vhdx), against what qemu wrote."""

import struct
import subprocess

from images.vhdx import allocated_extents

MiB = 1024 * 1024


def vhdx_with_writes(path, size, writes, *, block_size="1M"):
    """A dynamic VHDX made by qemu-img, then written by qemu-io at (offset, length) places."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "vhdx", "-o", f"block_size={block_size}", str(path), str(size)],
        check=True,
    )
    commands = []
    for offset, length in writes:
        commands += ["-c", f"write -P 7 {offset} {length}"]
    subprocess.run(["qemu-io", "-f", "vhdx", *commands, str(path)], check=True, capture_output=True)
    return path


def data_extents(extents):
    return [(e["start"], e["length"]) for e in extents if e["data"]]


def test_the_blocks_qemu_wrote_are_the_data(tmp_path):
    path = vhdx_with_writes(
        tmp_path / "disk.vhdx",
        3 * 1024 * MiB,
        [(0, 4096), (1024 * MiB + 5, 100 * 1024), (2047 * MiB, 2 * MiB)],  # the last one over two blocks
    )
    extents = allocated_extents(str(path), virtual_size=3 * 1024 * MiB)
    assert data_extents(extents) == [(0, MiB), (1024 * MiB, MiB), (2047 * MiB, 2 * MiB)]
    assert sum(e["length"] for e in extents) == 3 * 1024 * MiB


def test_larger_blocks_and_a_disk_that_ends_inside_one(tmp_path):
    size = 100 * MiB + 512
    path = vhdx_with_writes(tmp_path / "disk.vhdx", size, [(size - 512, 512)], block_size="8M")
    extents = allocated_extents(str(path), virtual_size=size)
    assert data_extents(extents) == [(96 * MiB, 4 * MiB + 512)]


def bat_offset(path):
    """The BAT's place, from the region table (as the module reads it), to damage it in the tests."""
    import uuid

    with open(path, "rb") as file:
        file.seek(192 * 1024)
        table = file.read(64 * 1024)
    for index in range(struct.unpack_from("<I", table, 8)[0]):
        guid, offset, _length = struct.unpack_from("<16sQI", table, 16 + 32 * index)
        if uuid.UUID(bytes_le=guid) == uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08"):
            return offset
    raise AssertionError("no BAT")


def test_anything_it_is_not_sure_of_is_no_answer(tmp_path):
    path = vhdx_with_writes(tmp_path / "disk.vhdx", 64 * MiB, [(0, 4096)])
    assert allocated_extents(str(path), virtual_size=64 * MiB) is not None
    # A size other than qemu's.
    assert allocated_extents(str(path), virtual_size=32 * MiB) is None
    # Not a VHDX.
    other = tmp_path / "other"
    other.write_bytes(b"\0" * 1024 * 1024)
    assert allocated_extents(str(other), virtual_size=MiB) is None
    assert allocated_extents(str(tmp_path / "gone"), virtual_size=MiB) is None

    # A block "partially present" (a differencing disk's state, which qemu does not read).
    partial = tmp_path / "partial.vhdx"
    partial.write_bytes(path.read_bytes())
    with open(partial, "r+b") as file:
        file.seek(bat_offset(partial))
        (entry,) = struct.unpack("<Q", file.read(8))
        file.seek(bat_offset(partial))
        file.write(struct.pack("<Q", (entry & ~7) | 7))
    assert allocated_extents(str(partial), virtual_size=64 * MiB) is None

    # A log to replay: both headers name one.
    logged = tmp_path / "logged.vhdx"
    logged.write_bytes(path.read_bytes())
    with open(logged, "r+b") as file:
        for header in (64 * 1024, 128 * 1024):
            file.seek(header + 48)
            file.write(b"\x01" * 16)
    assert allocated_extents(str(logged), virtual_size=64 * MiB) is None
