"""Conversion of VMDK, VHD, VHDX and the disk inside an OVA to the storage's target format.

`convert()` runs `qemu-img convert -p -t unsafe -f SRC -O TARGET` (formats always explicit) under prlimit and
turns its progress output into calls of `progress(percent)`; `should_cancel()` is asked about twice a
second and stops qemu-img. `ova_disk()` reads an OVA (a tar) without extracting it: every member is
checked (no absolute paths, no `..`, no links, devices or fifos), the OVF descriptor is parsed without
entities or network access, and the disk it names is located; `read_member()` shows that disk's bytes to
the format inspector, and `member_source()` names it for qemu in place (nothing is copied out).
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import subprocess
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

from lxml import etree

from imageconsole.core.words import gettext as _

from . import conf
from .inspection import QEMU_FORMATS, ImportRefused, _qemu_env, _qemu_error, qemu_img_command

MiB = 1024 * 1024
PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
CANCEL_POLL_SECONDS = 0.5
OVF_MAX_BYTES = 8 * MiB


class ConversionCancelled(Exception):
    """should_cancel() answered True; qemu-img was stopped and its output removed."""


def convert(
    *,
    source: str,
    source_format: str,
    target: str,
    target_format: str,
    options: list[str] | None = None,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> None:
    """Convert `source` to `target`; raises ImportRefused (with qemu-img's reason) or ConversionCancelled.

    `options` are the target's creation options (qemu-img's `-o`)."""
    command = qemu_img_command(
        [
            "convert",
            "-p",
            # The output is a scratch file that the storage ingests (and fsyncs) next: qemu-img's own
            # flush of it would write the converted bytes to disk twice.
            "-t",
            "unsafe",
            "-f",
            QEMU_FORMATS.get(source_format, source_format),
            "-O",
            target_format,
            *(["-o", ",".join(options)] if options else []),
            str(source),
            str(target),
        ],
        address_space=conf.convert_address_space(),
    )
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_qemu_env(), start_new_session=True
    )
    stderr = b""
    buffer = b""
    last_cancel_check = 0.0
    try:
        streams = [process.stdout, process.stderr]
        while streams:
            ready, _w, _x = select.select(streams, [], [], CANCEL_POLL_SECONDS)
            for stream in ready:
                data = os.read(stream.fileno(), 65536)
                if not data:
                    streams.remove(stream)
                elif stream is process.stderr:
                    stderr = (stderr + data)[-8192:]
                else:
                    buffer = (buffer + data)[-4096:]
                    found = PROGRESS.findall(buffer)
                    if found and progress is not None:
                        progress(float(found[-1]))
                    buffer = buffer[buffer.rfind(b"\r") + 1 :]
            now = time.monotonic()
            if should_cancel is not None and now - last_cancel_check >= CANCEL_POLL_SECONDS:
                last_cancel_check = now
                if should_cancel():
                    raise ConversionCancelled()
        returncode = process.wait()
    except BaseException:
        _stop(process)
        _remove(target)
        raise
    finally:
        for stream in (process.stdout, process.stderr):
            stream.close()
    if returncode != 0:
        _remove(target)
        raise ImportRefused(
            _("qemu-img could not convert the image: %(error)s")
            % {"error": _qemu_error(stderr.decode("utf-8", "replace")) or returncode},
            code="convert_failed",
        )
    if progress is not None:
        progress(100.0)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- storing the output while qemu-img writes it -----------------------------------------------------

FOLLOW_BLOCK = 4 * MiB
# qemu-img convert reports progress when a request is handed to one of its 8 coroutines, before the
# request (at most 2 MiB) is read and written; so the written data lags the reported progress by up to
# 16 MiB. The follower stays twice that behind.
FOLLOW_MARGIN = 32 * MiB
FOLLOW_POLL_SECONDS = 0.1


class OutputFollower:
    """Passes the file qemu-img convert is writing to `sink(block)` while qemu-img writes it.

    qemu-img convert (without -W) writes its output in order, one request after the other, leaving
    zero regions as holes, and into a raw file or a qcow2 whose metadata was preallocated (every
    cluster's place fixed when the file is created, at or after its guest offset) it writes each byte
    once. Its progress is the share of the source's `allocated` bytes handed out so far, and a guest
    offset is never behind that count; so, less a margin for the requests in flight, everything below
    `percent * allocated` in the output is final. `advance(percent)` (fed from qemu-img's progress)
    moves that mark, and a thread passes the file on up to it while the conversion runs, so storing
    (MD5, SHA256, chunks) overlaps converting instead of being a second pass after it.

    Once qemu-img has exited, `finish()` passes the rest, then reads what was passed early once more and
    compares each block's CRC32 with the one taken when the block went out: if qemu-img ever changed a
    region after writing it, `finish()` answers False and the caller stores the file again from the
    start. Nothing here trusts the reasoning above without that check.

        follower = OutputFollower(path, sink=writer.write, allocated=bytes_of_data_in_the_source)
        follower.start()
        convert(..., progress=follower.advance)      # on an error: follower.stop()
        if not follower.finish(): ...
    """

    def __init__(
        self, path: str, *, sink: Callable[[bytes], None], allocated: int, block: int = FOLLOW_BLOCK
    ):
        self.path = path
        self.sink = sink
        self.allocated = allocated
        self.block = block
        self.passed = 0  # bytes given to sink
        self.followed = 0  # of which while qemu-img ran
        self._crcs: list[int] = []
        self._safe = 0
        self._wake = threading.Condition()
        self._stopped = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="convert-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def advance(self, percent: float) -> None:
        safe = int(self.allocated * min(percent, 100.0) / 100) - FOLLOW_MARGIN
        safe -= safe % self.block
        with self._wake:
            if safe > self._safe:
                self._safe = safe
                self._wake.notify()

    def stop(self) -> None:
        """qemu-img failed or was stopped: end the thread; what was passed on is the caller's to drop."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join()

    def _pass(self, fd: int, end: int) -> None:
        while self.passed < end:
            data = os.pread(fd, min(self.block, end - self.passed), self.passed)
            if not data:
                raise OSError(errno.EIO, "the converted file ended before its reported progress")
            self._crcs.append(zlib.crc32(data))
            self.sink(data)
            self.passed += len(data)

    def _run(self) -> None:
        fd = None
        try:
            while True:
                with self._wake:
                    while not self._stopped and self._safe <= self.passed:
                        self._wake.wait(FOLLOW_POLL_SECONDS)
                    if self._stopped:
                        return
                    target = self._safe
                if fd is None:
                    fd = os.open(self.path, os.O_RDONLY)
                self._pass(fd, min(target, os.fstat(fd).st_size))
        except BaseException as error:  # noqa: BLE001 - handed to finish()
            self._error = error
        finally:
            if fd is not None:
                os.close(fd)

    def finish(self) -> bool:
        """qemu-img exited successfully: pass the rest, then check what was passed early. True when the
        sink received exactly the finished file."""
        self.stop()
        if self._error is not None:
            raise self._error
        self.followed = self.passed
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self._pass(fd, os.fstat(fd).st_size)
            blocks = range(self.followed // self.block)

            def unchanged(index: int) -> bool:
                return zlib.crc32(os.pread(fd, self.block, index * self.block)) == self._crcs[index]

            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="convert-verify") as pool:
                return all(pool.map(unchanged, blocks))
        finally:
            os.close(fd)


# --- OVA ------------------------------------------------------------------------------------------

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"


@dataclass(frozen=True)
class OvaDisk:
    name: str  # the tar member
    offset: int  # where its bytes start in the OVA
    size: int
    format_hint: str  # from the OVF's ovf:format URI ("vmdk", "qcow2", "raw"), or "" when unsaid
    disks: int  # how many disks the OVF names (the first one is imported)


def _unsafe_member(member: tarfile.TarInfo) -> str:
    name = member.name
    path = PurePosixPath(name)
    if name.startswith("/") or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        return _("its path is absolute")
    if ".." in path.parts or "\\" in name:
        return _("its path leaves the archive (..)")
    if member.issym() or member.islnk():
        return _("it is a link")
    if member.isdev() or member.isfifo():
        return _("it is a device or a fifo")
    if not (member.isfile() or member.isdir()):
        return _("it is not a regular file")
    return ""


def ova_disk(path: str) -> OvaDisk:
    """Check every member of the OVA and find the disk its OVF descriptor names."""
    try:
        archive = tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError) as error:
        raise ImportRefused(
            _("The file is not an OVA (a tar archive): %(error)s") % {"error": error}, code="ova_invalid"
        ) from error
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError) as error:
            raise ImportRefused(
                _("The OVA archive is damaged: %(error)s") % {"error": error}, code="ova_invalid"
            ) from error
        for member in members:
            reason = _unsafe_member(member)
            if reason:
                raise ImportRefused(
                    _("The OVA contains an unsafe entry “%(name)s”: %(reason)s. It is refused.")
                    % {"name": member.name[:200], "reason": reason},
                    code="ova_unsafe",
                )
        files = {member.name: member for member in members if member.isfile()}
        descriptors = [
            member for member in members if member.isfile() and member.name.lower().endswith(".ovf")
        ]
        if not descriptors:
            raise ImportRefused(_("The OVA has no .ovf descriptor."), code="ova_invalid")
        descriptor = descriptors[0]
        if descriptor.size > OVF_MAX_BYTES:
            raise ImportRefused(_("The OVA's .ovf descriptor is too large."), code="ova_invalid")
        xml = archive.extractfile(descriptor).read()
    href, format_hint, disks, compression = _ovf_disk(xml)
    member = files.get(href) or files.get(href.lstrip("./"))
    if member is None:
        raise ImportRefused(
            _("The OVF descriptor names the disk “%(name)s”, which is not in the OVA.")
            % {"name": href[:200]},
            code="ova_invalid",
        )
    if compression:
        raise ImportRefused(
            _("The OVA's disk is compressed (%(compression)s); export the OVA without compression.")
            % {"compression": compression[:20]},
            code="ova_compressed",
        )
    return OvaDisk(
        name=member.name, offset=member.offset_data, size=member.size, format_hint=format_hint, disks=disks
    )


def _ovf_disk(xml: bytes) -> tuple[str, str, int, str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as error:
        raise ImportRefused(
            _("The OVA's .ovf descriptor is not valid XML: %(error)s") % {"error": error}, code="ova_invalid"
        ) from error

    def attr(element, name):
        for key, value in element.attrib.items():
            if key == name or key.endswith("}" + name):
                return value
        return ""

    def local(element):
        return etree.QName(element).localname if isinstance(element.tag, str) else ""

    references = {}
    for element in root.iter():
        if local(element) == "File":
            references[attr(element, "id")] = (attr(element, "href"), attr(element, "compression"))
    disks = [element for element in root.iter() if local(element) == "Disk"]
    if not disks:
        raise ImportRefused(_("The OVF descriptor names no disk."), code="ova_invalid")
    first = disks[0]
    file_ref = attr(first, "fileRef")
    if file_ref not in references:
        raise ImportRefused(_("The OVF descriptor's disk refers to no file."), code="ova_invalid")
    href, compression = references[file_ref]
    uri = attr(first, "format").lower()
    hint = next((fmt for fmt in ("vmdk", "qcow2", "vhdx", "vhd", "raw") if fmt in uri), "")
    return href, hint, len(disks), compression if compression not in ("", "identity") else ""


def member_source(path: str, disk: OvaDisk) -> str:
    """A filename qemu-img and qemu-nbd read the OVA's disk through in place (with `-f FORMAT`): the raw
    driver over the member's window of the tar, so that nothing reads outside it and nothing is copied."""
    window = {"driver": "raw", "offset": disk.offset, "size": disk.size}
    return "json:" + json.dumps({"file": {**window, "file": {"driver": "file", "filename": str(path)}}})


def read_member(
    path: str,
    disk: OvaDisk,
    *,
    on_block: Callable[[bytes], None],
    progress: Callable[[int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> None:
    """Show the disk's bytes inside the OVA to `on_block` (the format inspector), in order."""
    done = 0
    last_check = 0.0
    with open(path, "rb") as source:
        source.seek(disk.offset)
        while done < disk.size:
            data = source.read(min(4 * MiB, disk.size - done))
            if not data:
                raise ImportRefused(_("The OVA ends in the middle of its disk."), code="ova_truncated")
            on_block(data)
            done += len(data)
            if progress is not None:
                progress(done)
            now = time.monotonic()
            if should_cancel is not None and now - last_check >= CANCEL_POLL_SECONDS:
                last_check = now
                if should_cancel():
                    raise ConversionCancelled()
