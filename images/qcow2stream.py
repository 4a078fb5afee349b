"""A compact qcow2 written front to back, so that the storage hashes and stores it as it is produced.

qemu-img convert writes a compact qcow2 out of order: it places each L2 table and refcount block when it
first needs one and fills them in as the data arrives, so the file is final only when qemu-img exits, and
storing it is a second pass over its bytes. Here the layout is computed first, from which 64 KiB clusters
of the guest hold data (`qemu-img map`, then, where the source's blocks are larger than a cluster, a scan
for clusters that are all zeros), and the file is then emitted in order:

    header | refcount table | refcount blocks | L1 table | L2 tables | data clusters in guest order

Every cluster has refcount 1 and the "copied" flag, as in a freshly converted image; `qemu-img check`
finds nothing to repair and `qemu-img compare` finds the guest data equal. Where the source's blocks are
scanned, a cluster is stored when any of its bytes is not zero, qemu-img's own rule for a qcow2 target, so
the result is as compact as qemu-img's. Where they are not (a VMDK's 64 KiB grains match the clusters), a
grain the guest filled with zeros is stored too. The data is read through qemu-nbd (images.nbd) straight
into the storage writer's buffer.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS
L2_ENTRIES = CLUSTER // 8
REFCOUNT_ORDER = 4  # 16-bit refcounts, qemu's default
REFCOUNTS_PER_BLOCK = CLUSTER * 8 // (1 << REFCOUNT_ORDER)
COPIED = 1 << 63
HEADER = struct.Struct(">4sIQIIQIIQQIIQQQQII")
HEADER_LENGTH = 104
SCAN_BLOCK = 4 * 1024 * 1024

Runs = list[tuple[int, int]]  # (first cluster, count), sorted, apart


def data_runs(extents: Iterable[dict], virtual_size: int) -> Runs:
    """The clusters that `qemu-img map --output=json` extents mark as data (allocated, not zero)."""
    runs: Runs = []
    for extent in extents:
        if not extent.get("data") or extent.get("zero"):
            continue
        start = int(extent["start"])
        end = min(start + int(extent["length"]), virtual_size)
        if end <= start:
            continue
        first, last = start // CLUSTER, (end - 1) // CLUSTER
        if runs and runs[-1][0] + runs[-1][1] >= first:
            begin, count = runs[-1]
            runs[-1] = (begin, max(count, last + 1 - begin))
        else:
            runs.append((first, last + 1 - first))
    return runs


def nonzero_runs(
    runs: Runs,
    virtual_size: int,
    read_into: Callable[[int, memoryview], None],
    *,
    should_stop: Callable[[], bool] | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Runs:
    """`runs` less the clusters whose bytes are all zero (read with `read_into(offset, view)`)."""
    zero = bytes(CLUSTER)
    buffer = bytearray(SCAN_BLOCK)
    found: Runs = []
    for first, count in runs:
        cluster = first
        end = first + count
        while cluster < end:
            n = min(end - cluster, SCAN_BLOCK // CLUSTER)
            offset = cluster * CLUSTER
            length = min(n * CLUSTER, virtual_size - offset)
            view = memoryview(buffer)[:length]
            read_into(offset, view)
            if on_read is not None:
                on_read(length)
            for index in range(n):
                piece = buffer[index * CLUSTER : min((index + 1) * CLUSTER, length)]
                if piece != zero[: len(piece)]:
                    at = cluster + index
                    if found and found[-1][0] + found[-1][1] == at:
                        found[-1] = (found[-1][0], found[-1][1] + 1)
                    else:
                        found.append((at, 1))
            cluster += n
            if should_stop is not None and should_stop():
                return found
    return found


@dataclass(frozen=True)
class Layout:
    virtual_size: int
    runs: Runs
    l1_size: int
    l1_clusters: int
    l2_tables: tuple[int, ...]  # the L1 indexes that have a table
    refcount_table_clusters: int
    refcount_blocks: int
    data_clusters: int

    @classmethod
    def of(cls, virtual_size: int, runs: Runs) -> Layout:
        l1_size = -(-virtual_size // (CLUSTER * L2_ENTRIES))
        l1_clusters = max(1, -(-l1_size * 8 // CLUSTER))
        tables: list[int] = []
        for first, count in runs:
            for index in range(first // L2_ENTRIES, (first + count - 1) // L2_ENTRIES + 1):
                if not tables or tables[-1] != index:
                    tables.append(index)
        data = sum(count for _first, count in runs)
        table_clusters = blocks = 1
        while True:
            total = 1 + table_clusters + blocks + l1_clusters + len(tables) + data
            need_blocks = -(-total // REFCOUNTS_PER_BLOCK)
            need_table = -(-need_blocks * 8 // CLUSTER)
            if (need_blocks, need_table) == (blocks, table_clusters):
                break
            blocks, table_clusters = max(blocks, need_blocks), max(table_clusters, need_table)
        return cls(virtual_size, runs, l1_size, l1_clusters, tuple(tables), table_clusters, blocks, data)

    @property
    def refcount_table_offset(self) -> int:
        return CLUSTER

    @property
    def refcount_blocks_offset(self) -> int:
        return self.refcount_table_offset + self.refcount_table_clusters * CLUSTER

    @property
    def l1_offset(self) -> int:
        return self.refcount_blocks_offset + self.refcount_blocks * CLUSTER

    @property
    def l2_offset(self) -> int:
        return self.l1_offset + self.l1_clusters * CLUSTER

    @property
    def data_offset(self) -> int:
        return self.l2_offset + len(self.l2_tables) * CLUSTER

    @property
    def clusters(self) -> int:
        return self.data_offset // CLUSTER + self.data_clusters

    @property
    def size(self) -> int:
        """The length of the file."""
        return self.clusters * CLUSTER

    def header(self) -> bytes:
        header = HEADER.pack(
            b"QFI\xfb",
            3,  # version: compat 1.1
            0,  # no backing file
            0,
            CLUSTER_BITS,
            self.virtual_size,
            0,  # not encrypted
            self.l1_size,
            self.l1_offset,
            self.refcount_table_offset,
            self.refcount_table_clusters,
            0,  # no snapshots
            0,
            0,  # incompatible features
            0,  # compatible features
            0,  # autoclear features
            REFCOUNT_ORDER,
            HEADER_LENGTH,
        )
        # The zeros after the header are its extension area's end marker.
        return header + bytes(CLUSTER - len(header))

    def metadata(self) -> Iterator[bytes]:
        """The file's bytes before the data clusters, a cluster or so at a time."""
        yield self.header()
        table = array("Q", bytes(self.refcount_table_clusters * CLUSTER))
        for block in range(self.refcount_blocks):
            table[block] = self.refcount_blocks_offset + block * CLUSTER
        yield _big_endian(table)
        for block in range(self.refcount_blocks):
            used = min(REFCOUNTS_PER_BLOCK, self.clusters - block * REFCOUNTS_PER_BLOCK)
            yield b"\x00\x01" * used + bytes((REFCOUNTS_PER_BLOCK - used) * 2)
        l1 = array("Q", bytes(self.l1_clusters * CLUSTER))
        for position, index in enumerate(self.l2_tables):
            l1[index] = (self.l2_offset + position * CLUSTER) | COPIED
        yield _big_endian(l1)
        yield from self._l2_tables()

    def _l2_tables(self) -> Iterator[bytes]:
        host = self.data_offset
        table_index = None
        table = None
        for first, count in self.runs:
            cluster, end = first, first + count
            while cluster < end:
                index = cluster // L2_ENTRIES
                if index != table_index:
                    if table is not None:
                        yield _big_endian(table)
                    table_index, table = index, array("Q", bytes(CLUSTER))
                stop = min(end, (index + 1) * L2_ENTRIES)
                n = stop - cluster
                start = cluster - index * L2_ENTRIES
                table[start : start + n] = array(
                    "Q", range(host | COPIED, (host + n * CLUSTER) | COPIED, CLUSTER)
                )
                host += n * CLUSTER
                cluster = stop
        if table is not None:
            yield _big_endian(table)


def _big_endian(values: array) -> bytes:
    values.byteswap()
    return values.tobytes()


def write_qcow2(
    layout: Layout,
    read_into: Callable[[int, memoryview], None],
    writer,
    *,
    on_data: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """Emit the qcow2 of `layout` to the storage `writer`, its data read with `read_into(offset, view)`
    (into the writer's own buffer where it offers one). `on_data(n)` is told of each piece of data;
    False when `should_stop()` said so before the end."""
    for piece in layout.metadata():
        writer.write(piece)
    copier = _GuestCopier(layout.virtual_size, read_into, writer, on_data, should_stop)
    return all(copier.copy(first * CLUSTER, (first + count) * CLUSTER) for first, count in layout.runs)


def write_raw(
    extents: Iterable[dict],
    virtual_size: int,
    read_into: Callable[[int, memoryview], None],
    writer,
    *,
    on_data: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """Emit the raw disk to `writer`: the data extents (`qemu-img map`'s) read with `read_into`, zeros for
    the rest without asking qemu for them. As write_qcow2 otherwise."""
    copier = _GuestCopier(virtual_size, read_into, writer, on_data, should_stop)
    zeros = bytes(SCAN_BLOCK)
    position = 0
    for extent in extents:
        start = int(extent["start"])
        end = min(start + int(extent["length"]), virtual_size)
        if start != position or end <= start:
            raise ValueError(f"the extents do not follow each other at {position}")
        if extent.get("data") and not extent.get("zero"):
            if not copier.copy(start, end):
                return False
        else:
            while start < end:
                n = min(SCAN_BLOCK, end - start)
                writer.write(zeros[:n])
                start += n
                if not copier.done(n):
                    return False
        position = end
    if position != virtual_size:
        raise ValueError(f"the extents end at {position}, the disk at {virtual_size}")
    return True


class _GuestCopier:
    """Copies guest bytes read with `read_into` to a storage writer, into its own buffer where it has one."""

    def __init__(self, virtual_size, read_into, writer, on_data, should_stop):
        self.virtual_size, self.read_into, self.writer = virtual_size, read_into, writer
        self.on_data, self.should_stop = on_data, should_stop
        self._own: memoryview | None = None

    def done(self, n: int) -> bool:
        if self.on_data is not None:
            self.on_data(n)
        return not (self.should_stop is not None and self.should_stop())

    def copy(self, offset: int, end: int) -> bool:
        """The guest's bytes from `offset` to `end`, zeros past the disk's end (a last partial cluster)."""
        while offset < end:
            area = self.writer.write_area()
            if area is None or not len(area):
                if self._own is None:
                    self._own = memoryview(bytearray(SCAN_BLOCK))
                area = self._own
            n = min(len(area), end - offset, SCAN_BLOCK)
            guest = max(0, min(n, self.virtual_size - offset))
            if guest:
                self.read_into(offset, area[:guest])
            if guest < n:
                area[guest:n] = bytes(n - guest)
            if area is self._own:
                self.writer.write(area[:n])
            else:
                self.writer.wrote(n)
            offset += n
            if not self.done(n):
                return False
        return True
