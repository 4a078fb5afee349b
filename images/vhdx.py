"""Where a VHDX keeps its data, read from its block allocation table (BAT).

qemu 7's VHDX driver cannot tell (`qemu-img map` calls the whole disk data), so without this a sparse VHDX
could only be converted by reading every byte of its virtual size. `allocated_extents(path)` reads the
structures of [MS-VHDX] (https://learn.microsoft.com/openspecs/windows_protocols/ms-vhdx) that locate the
data: the current header (its log must be empty), the region table, the metadata's block size, virtual
size and logical sector size, and the BAT, and answers extents in `qemu-img map`'s shape. It answers None
wherever it is not sure (a log to replay, a differencing disk, a block state qemu does not read, a size
that disagrees with qemu's): the caller then lets qemu-img convert find the zeros. The bytes themselves
are always read by qemu; this only says which blocks hold any.
"""

from __future__ import annotations

import os
import struct
import uuid

KiB = 1024
MiB = 1024 * KiB
HEADERS = (64 * KiB, 128 * KiB)
REGION_TABLES = (192 * KiB, 256 * KiB)
BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
# Payload block states: qemu reads zeros for these, and the data of FULLY_PRESENT.
ZERO_STATES = {0, 1, 2, 3}  # not present, undefined, zero, unmapped
FULLY_PRESENT = 6
MAX_BAT_BYTES = 512 * MiB
MAX_METADATA_ENTRIES = 2047


def allocated_extents(path: str, *, virtual_size: int) -> list[dict] | None:
    """The disk's extents, each `{"start", "length", "data"}`, or None when this file is not plainly read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _extents(fd, virtual_size)
    except (OSError, struct.error, ValueError):
        return None
    finally:
        os.close(fd)


def _read(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise ValueError("the file ends early")
    return data


def _extents(fd: int, virtual_size: int) -> list[dict] | None:
    if _read(fd, 0, 8) != b"vhdxfile":
        return None
    headers = []
    for offset in HEADERS:
        head = _read(fd, offset, 80)
        if head[:4] == b"head":
            sequence = struct.unpack_from("<Q", head, 8)[0]
            log_guid = head[48:64]
            headers.append((sequence, log_guid))
    if not headers:
        return None
    _sequence, log_guid = max(headers)
    if any(log_guid):  # a log that may have to be replayed before the BAT is true
        return None
    regions = _regions(fd)
    if regions is None or BAT not in regions or METADATA not in regions:
        return None
    items = _metadata(fd, *regions[METADATA])
    if items is None:
        return None
    block_size, flags = struct.unpack("<II", items[FILE_PARAMETERS][:8])
    size = struct.unpack("<Q", items[VIRTUAL_DISK_SIZE][:8])[0]
    sector = struct.unpack("<I", items[LOGICAL_SECTOR_SIZE][:4])[0]
    if flags & 2 or size != virtual_size or sector not in (512, 4096):  # a parent, or not qemu's size
        return None
    if block_size < MiB or block_size > 256 * MiB or block_size & (block_size - 1):
        return None
    chunk_ratio = (1 << 23) * sector // block_size
    blocks = -(-size // block_size)
    entries = blocks + (blocks - 1) // chunk_ratio if blocks else 0
    bat_offset, bat_length = regions[BAT]
    if entries * 8 > min(bat_length, MAX_BAT_BYTES):
        return None
    table = _read(fd, bat_offset, entries * 8)
    extents: list[dict] = []
    for block in range(blocks):
        (entry,) = struct.unpack_from("<Q", table, 8 * (block + block // chunk_ratio))
        state = entry & 7
        if state == FULLY_PRESENT:
            data = True
        elif state in ZERO_STATES:
            data = False
        else:
            return None
        start = block * block_size
        length = min(block_size, size - start)
        if extents and extents[-1]["data"] == data:
            extents[-1]["length"] += length
        else:
            extents.append({"start": start, "length": length, "data": data, "zero": not data})
    return extents


def _regions(fd: int) -> dict[uuid.UUID, tuple[int, int]] | None:
    for offset in REGION_TABLES:
        table = _read(fd, offset, 64 * KiB)
        if table[:4] != b"regi":
            continue
        count = struct.unpack_from("<I", table, 8)[0]
        if count > 2047:
            return None
        regions = {}
        for index in range(count):
            guid, file_offset, length = struct.unpack_from("<16sQI", table, 16 + 32 * index)
            regions[uuid.UUID(bytes_le=guid)] = (file_offset, length)
        return regions
    return None


def _metadata(fd: int, offset: int, length: int) -> dict[uuid.UUID, bytes] | None:
    header = _read(fd, offset, 32 + 32 * MAX_METADATA_ENTRIES)
    if header[:8] != b"metadata":
        return None
    count = struct.unpack_from("<H", header, 10)[0]
    if count > MAX_METADATA_ENTRIES:
        return None
    items = {}
    for index in range(count):
        guid, item_offset, item_length = struct.unpack_from("<16sII", header, 32 + 32 * index)
        if item_offset + item_length > length or item_length > 64 * KiB:
            return None
        items[uuid.UUID(bytes_le=guid)] = _read(fd, offset + item_offset, item_length)
    if not {FILE_PARAMETERS, VIRTUAL_DISK_SIZE, LOGICAL_SECTOR_SIZE} <= items.keys():
        return None
    return items
