"""The work after an import's last byte, run by jobs: inspecting, converting, storing, and `available`.

- `import_finish`: an image stored as it arrived (qcow2, raw, ISO). Its bytes are already in the
  storage; the qcow2 layout is checked against the stored length (a truncated file is refused) and
  qemu-img reads the header and tables from a sparse shadow. Queue `imports`.
- `import_convert`: a staged VMDK, VHD, VHDX or OVA. The OVA's members are checked and its disk read
  where it lies in the tar; `qemu-img check` and `info` read the disk. The target (qcow2, or raw) is
  written front to back straight into the storage from the guest data qemu-nbd reads
  (images.qcow2stream: no scratch file, one pass); where the data is comes from `qemu-img map`, or for
  a VHDX from its own allocation table (images.vhdx). A VHDX whose table cannot be read plainly is
  converted by qemu-img: a raw target is stored while qemu-img writes it (OutputFollower), a qcow2
  after. MD5 and SHA256 are taken as the bytes are stored. Queue `convert`.

Both are safe to run twice (a second run finds the image no longer in their stage and returns) and
end in `available`, or in `failed` with a message through `import_fail`. A cancel is noticed within two
seconds (the checks between steps, qemu-img's progress loop, the qcow2 writer's blocks and the storage's
`should_cancel`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable

from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_noop

from imageconsole.core.sizes import sizes_apart
from imageconsole.core.words import gettext as _
from imageconsole.core.words import message_of
from storage.backends import Cancelled, StorageError, get_backend
from tenants.models import OperationLog
from tenants.oplog import size as oplog_size

from ..conversion import ConversionCancelled, OutputFollower, convert, member_source, ova_disk, read_member
from ..inspection import (
    HEAD_BYTES,
    ImportRefused,
    Inspection,
    StreamInspector,
    check_qcow2_layout,
    check_virtual_size,
    info_encrypted,
    qemu_img_allocated,
    qemu_img_check,
    qemu_img_info,
    qemu_img_map,
    qemu_img_measure,
    write_shadow,
)
from ..models import Image, ImageReplica, UploadSession
from ..nbd import NbdError, NbdExport
from ..qcow2stream import CLUSTER, Layout, data_runs, nonzero_runs, write_qcow2, write_raw
from ..vhdx import allocated_extents as vhdx_extents
from .imports import (
    CancelCheck,
    cancel_requested,
    delete_stored,
    import_cleanup,
    import_fail,
    size_limit,
    staging_dir,
)
from .progress import Heartbeat, StageProgress
from .transitions import TransitionNotAllowed, image_transition

logger = logging.getLogger("images.pipeline")

CONVERTIBLE = {"vmdk", "vhd", "vhdx", "qcow2", "raw", "gpt"}


class Timings:
    """How long each step took, logged when the import ends (an operator's first question)."""

    def __init__(self):
        self.steps: list[tuple[str, float]] = []
        self._last = time.perf_counter()

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        self.steps.append((step, now - self._last))
        self._last = now

    def __str__(self):
        return ", ".join(f"{step} {seconds:.2f} s" for step, seconds in self.steps)


class _Stop(Exception):
    """The import was cancelled (or ended elsewhere) while this job worked on it."""


def _load(image_id, stages) -> Image | None:
    image = Image.objects.select_related("storage", "tenant").filter(pk=image_id).first()
    if image is None or image.status != Image.Status.UPLOADING or image.stage not in stages:
        return None
    return image


def _check_cancel(image_id) -> None:
    if cancel_requested(image_id):
        raise _Stop()


def _run(image_id, work: Callable[[Image], None], stages) -> None:
    image = _load(image_id, stages)
    if image is None:
        return
    with Heartbeat(image.pk):
        try:
            work(image)
        except _Stop:
            import_cleanup(image_id=image.pk)
        except (ConversionCancelled, Cancelled):
            import_cleanup(image_id=image.pk)
        except ImportRefused as refused:
            import_fail(image_id=image.pk, message=message_of(refused))
        except StorageError as error:
            import_fail(image_id=image.pk, message=message_of(error))
        except Exception as error:
            logger.exception("import of %s failed", image.pk)
            import_fail(
                image_id=image.pk,
                message=_(
                    "The import failed unexpectedly (%(error)s). Try again; if it fails again, tell an administrator."
                )
                % {"error": type(error).__name__},
            )


# --- stored as it arrived ------------------------------------------------------------------------


def import_finish(*, image_id, head: bytes | None = None) -> None:
    """Check an image whose bytes the receiver stored, and make it available. `head`: the file's first
    HEAD_BYTES (all of a shorter file) when the caller holds them (the receiver that just took the last
    byte), instead of reading them back from the staging file or the store."""
    _run(image_id, lambda image: _finish(image, head=head), stages=(Image.Stage.INSPECTING,))


def _finish(image: Image, *, head: bytes | None = None) -> None:
    timings = Timings()
    session = UploadSession.objects.get(image=image)
    replica = ImageReplica.objects.get(image=image, storage=image.storage)
    backend = get_backend(image.storage)
    inspection = Inspection.from_dict(session.inspection)
    size = session.length
    StageProgress(image.pk, Image.Stage.INSPECTING)
    virtual_size = inspection.virtual_size or size
    encrypted = inspection.encrypted
    if inspection.format == "qcow2":
        cancelled = CancelCheck(image.pk)

        def read(offset: int, length: int) -> bytes:
            if cancelled():
                raise _Stop()
            return b"".join(backend.read_range(replica.key, offset, offset + length))

        if head is None or len(head) != min(HEAD_BYTES, size):
            head_path = staging_dir(image.pk) / "head"
            head = head_path.read_bytes() if head_path.exists() else read(0, min(HEAD_BYTES, size))
        layout = check_qcow2_layout(head[:512], size=size, read=read)
        shadow = staging_dir(image.pk) / "shadow.qcow2"
        write_shadow(
            str(shadow),
            head=head,
            size=size,
            regions=[
                (offset, read(offset, length))
                for offset, length in layout.regions
                if offset + length > len(head)
            ],
        )
        info = qemu_img_info(str(shadow), fmt="qcow2")
        virtual_size = int(info["virtual-size"])
        encrypted = encrypted or info_encrypted(info)
    check_virtual_size(virtual_size=virtual_size, limit=size_limit(image))
    _check_cancel(image.pk)
    timings.mark("layout+info")
    details = session.inspection
    _make_available(
        image,
        done=f"stored as it arrived ({inspection.format}): {timings}",
        replica=replica,
        changes={
            "size": size,
            "virtual_size": virtual_size,
            "md5": details.get("md5", ""),
            "sha256": details.get("sha256") or session.received_sha256,
            "encrypted": encrypted,
            "disk_format": image.source_format,
        },
    )


# --- converted -----------------------------------------------------------------------------------


def import_convert(*, image_id) -> None:
    """Inspect, convert and store a staged VMDK, VHD, VHDX or OVA, and make it available."""
    _run(
        image_id,
        _convert,
        stages=(Image.Stage.INSPECTING, Image.Stage.CONVERTING, Image.Stage.STORING),
    )


def _convert(image: Image) -> None:
    directory = staging_dir(image.pk)
    source = directory / "upload"
    if not source.exists():
        raise ImportRefused(_("The uploaded file is gone from the staging area; import the image again."))
    timings = Timings()
    progress = StageProgress(image.pk, Image.Stage.INSPECTING)
    source_format = image.source_format
    if source_format == "ova":
        source, source_format = _ova_disk(image, source, progress)
        timings.mark("ova")
    _check_cancel(image.pk)
    qemu_img_check(str(source), fmt=source_format)
    timings.mark("check")
    info = qemu_img_info(str(source), fmt=source_format)
    virtual_size = int(info["virtual-size"])
    check_virtual_size(virtual_size=virtual_size, limit=size_limit(image))
    target_format = image.storage.effective_target_format
    measure = qemu_img_measure(str(source), fmt=source_format, target_format=target_format)
    needed = measure.required
    # The target (qcow2 or raw) is written by images.qcow2stream straight into the storage, unless nothing
    # can say where the source's data is (then qemu-img convert writes it, into a scratch file).
    extents = _allocation(source, source_format, virtual_size)
    streamed = extents is not None
    if streamed and target_format == "qcow2":  # at most this long (measure calls a VHDX as long as its disk)
        needed = min(needed, Layout.of(virtual_size, data_runs(extents, virtual_size)).size)
    free = shutil.disk_usage(directory).free
    if not streamed and free < needed:
        needed_shown, free_shown = sizes_apart(needed, free)
        raise ImportRefused(
            _(
                "The conversion needs %(needed)s in the staging area, which has %(free)s free. Ask an "
                "administrator to free space, then import the image again."
            )
            % {"needed": needed_shown, "free": free_shown},
            code="staging_full",
        )
    backend = get_backend(image.storage)
    backend.check_capacity(needed)
    _check_cancel(image.pk)
    timings.mark("info+measure")

    output = directory / f"converted.{target_format}"
    key = str(image.pk)
    # The replica is recorded before a byte is stored: when this worker is killed, the reconciler's
    # cleanup finds the key and removes what was written under it.
    ImageReplica.objects.update_or_create(
        image=image,
        storage=image.storage,
        defaults={"key": key, "state": ImageReplica.State.SYNCING, "size": 0},
    )
    options = _follow_options(target_format)
    progress.set_stage(Image.Stage.CONVERTING)
    if streamed:
        result = _stream(
            image, source, source_format, info, extents, target_format, backend, key, progress, timings
        )
    elif options is None:
        _convert_file(image, source, source_format, output, target_format, progress.report_percent)
        progress.report_percent(100, final=True)
        timings.mark("convert")
        result = _store_file(image, backend, output, key, progress)
        timings.mark("store")
    else:
        result = _convert_and_store(
            image, source, source_format, output, target_format, options, backend, key, progress, timings
        )
    replica, _created = ImageReplica.objects.update_or_create(
        image=image,
        storage=image.storage,
        defaults={"key": key, "state": ImageReplica.State.SYNCING, "size": result.size},
    )
    _make_available(
        image,
        done=f"converted {source_format} -> {target_format}: {timings}",
        replica=replica,
        changes={
            "size": result.size,
            "virtual_size": virtual_size,
            "md5": result.md5,
            "sha256": result.sha256,
            "encrypted": info_encrypted(info),
            "disk_format": target_format,
        },
    )


def _allocation(source, source_format: str, virtual_size: int) -> list[dict] | None:
    """Where the source's data is, as `qemu-img map` extents: qemu's own answer, or for a VHDX (whose qemu
    driver calls the whole disk data) its block allocation table's. None when neither can tell."""
    if source_format != "vhdx":
        return qemu_img_map(str(source), fmt=source_format)
    if str(source).startswith("json:"):  # a disk inside an OVA: images.vhdx reads plain files only
        return None
    return vhdx_extents(str(source), virtual_size=virtual_size)


def _follow_options(target_format: str) -> list[str] | None:
    """qemu-img creation options under which the output can be stored while it is written, or None.

    Only for an image that was not streamed (images.qcow2stream). A raw output is written in order, each
    byte once, so it is followed (OutputFollower). A compact qcow2 is not: qemu-img fills in its tables
    as it goes, so it is stored after the conversion."""
    return [] if target_format == "raw" else None


def _convert_file(image, source, source_format, output, target_format, report, options=None) -> None:
    """`report(percent)` gets qemu-img's progress."""
    convert(
        source=str(source),
        source_format=source_format,
        target=str(output),
        target_format=target_format,
        options=options,
        progress=report,
        should_cancel=CancelCheck(image.pk),
    )
    _check_cancel(image.pk)


def _store_file(image, backend, output, key, progress: StageProgress):
    progress.set_stage(Image.Stage.STORING)
    stored_size = output.stat().st_size
    return backend.ingest(
        str(output),
        key=key,
        progress=lambda done: progress.report(done, stored_size),
        should_cancel=CancelCheck(image.pk),
    )


def _convert_and_store(
    image, source, source_format, output, target_format, options, backend, key, progress, timings
):
    """Convert while the storage takes the output as qemu-img writes it (see OutputFollower): hashing and
    storing overlap the conversion. Falls back to storing the finished file if the follower saw a block
    change after it had been stored."""
    allocated = qemu_img_allocated(str(source), fmt=source_format)
    writer = backend.open_writer(key, expected_size=None)
    follower = OutputFollower(str(output), sink=writer.write, allocated=allocated)
    follower.start()

    def report(percent: float) -> None:
        follower.advance(percent)
        progress.report_percent(percent)

    try:
        try:
            _convert_file(image, source, source_format, output, target_format, report, options)
        except BaseException:
            follower.stop()
            raise
        progress.report_percent(100, final=True)
        timings.mark("convert (storing alongside)")
        progress.set_stage(Image.Stage.STORING)
        exact = follower.finish()
        if exact:
            result = writer.commit()
            timings.mark(f"store the last {filesizeformat(follower.passed - follower.followed)} and verify")
            return result
    except BaseException:
        writer.abort()
        raise
    writer.abort()
    logger.warning("import %s: qemu-img changed its output after writing it; storing it again", image.pk)
    result = _store_file(image, backend, output, key, progress)
    timings.mark("store again")
    return result


def _stream(image, source, source_format, info, extents, target_format, backend, key, progress, timings):
    """Write the qcow2 front to back into the storage (images.qcow2stream), or the raw disk, reading the
    guest's data through qemu-nbd: hashing and storing are the conversion, and nothing is written to
    staging.

    Where the source's blocks are larger than a qcow2 cluster (a VHD's 2 MiB, a VHDX's, a raw disk inside
    an OVA), its data is read once first to leave out the clusters that hold only zeros, as qemu-img does.
    A raw disk holds its zeros anyway: they are written without asking qemu for them."""
    virtual_size = int(info["virtual-size"])
    runs = data_runs(extents, virtual_size)
    scan = target_format == "qcow2" and int(info.get("cluster-size") or 0) not in range(1, CLUSTER + 1)
    cancel = CancelCheck(image.pk)
    try:
        with NbdExport(source, fmt=source_format, directory=staging_dir(image.pk)) as export:
            if scan:
                scanning = _Counter(sum(count for _first, count in runs) * CLUSTER, progress, 0, 30)
                runs = nonzero_runs(
                    runs, virtual_size, export.read_into, should_stop=cancel, on_read=scanning
                )
                timings.mark("find the zero clusters")
            if cancel():
                raise ConversionCancelled()
            if target_format == "raw":
                size = virtual_size
                writing = _Counter(virtual_size, progress, 0, 100)

                def write(writer) -> bool:
                    return write_raw(
                        extents, virtual_size, export.read_into, writer, on_data=writing, should_stop=cancel
                    )
            else:
                layout = Layout.of(virtual_size, runs)
                size = layout.size
                writing = _Counter(layout.data_clusters * CLUSTER, progress, 30 if scan else 0, 100)

                def write(writer) -> bool:
                    return write_qcow2(layout, export.read_into, writer, on_data=writing, should_stop=cancel)

            writer = backend.open_writer(key, expected_size=size)
            try:
                if not write(writer):
                    raise ConversionCancelled()
                progress.report_percent(100, final=True)
                progress.set_stage(Image.Stage.STORING)
                result = writer.commit()
            except BaseException:
                writer.abort()
                raise
    except NbdError as error:
        raise ImportRefused(
            _("qemu-img could not convert the image: %(error)s") % {"error": str(error)[:500]},
            code="convert_failed",
        ) from error
    timings.mark(f"convert and store {filesizeformat(size)} in one pass")
    return result


class _Counter:
    """Bytes done of `total`, shown as the stage's percent between `low` and `high`."""

    def __init__(self, total: int, progress: StageProgress, low: float, high: float):
        self.total, self.progress, self.low, self.high = max(total, 1), progress, low, high
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.progress.report_percent(self.low + (self.high - self.low) * min(1.0, self.done / self.total))


def _ova_disk(image: Image, path, progress: StageProgress):
    """Check the OVA and inspect its disk where it lies in the tar; (what qemu reads it as, format)."""
    disk = ova_disk(str(path))
    inspector = StreamInspector(disk.format_hint if disk.format_hint in CONVERTIBLE else None)
    read_member(
        str(path),
        disk,
        on_block=inspector.feed,
        progress=lambda done: progress.report(done, disk.size),
        should_cancel=CancelCheck(image.pk),
    )
    found = inspector.finish()
    if found.format not in CONVERTIBLE:
        raise ImportRefused(
            _("The OVA's disk is %(format)s, which cannot be imported.") % {"format": found.format},
            code="ova_disk",
        )
    fmt = "raw" if found.format == "gpt" else found.format
    if disk.disks > 1:
        logger.info("OVA of %s names %d disks; importing the first", image.pk, disk.disks)
    return member_source(str(path), disk), fmt


# --- the end -------------------------------------------------------------------------------------


def _make_available(image: Image, *, replica: ImageReplica, changes: dict, done: str) -> None:
    """Replica ready and image available in one transaction; then the staging files go. `done`: what
    the import did, for the log."""
    try:
        with transaction.atomic():
            ImageReplica.objects.filter(pk=replica.pk).update(
                state=ImageReplica.State.READY, size=changes["size"], progress=100
            )
            image_transition(
                image_id=image.pk,
                to=Image.Status.AVAILABLE,
                allowed_from=[Image.Status.UPLOADING],
                action="image.import",
                result=OperationLog.Result.SUCCESS,
                message_code=gettext_noop("%(size)s stored, %(format)s, SHA256 %(sha256)s"),
                params={
                    "size": oplog_size(changes["size"]),
                    "format": changes["disk_format"],
                    "sha256": changes["sha256"],
                },
                changes={
                    **changes,
                    "stage": Image.Stage.NONE,
                    "progress": 100,
                    "bytes_done": changes["size"],
                    "error": "",
                },
            )
    except TransitionNotAllowed:
        # Cancelled at the last moment: what was stored goes with the rest.
        delete_stored(storage=image.storage, key=replica.key)
        import_cleanup(image_id=image.pk)
        return
    # One line per import, once the image is available (bench/import_upload.py times imports by it).
    logger.info("import %s available: %s", image.pk, done)
    shutil.rmtree(staging_dir(image.pk), ignore_errors=True)
    UploadSession.objects.filter(image_id=image.pk).update(staging_path="", secret_encrypted="")
    try:
        get_backend(image.storage).settle(replica.key)
    except StorageError:
        logger.warning("could not settle %s on %s", replica.key, image.storage, exc_info=True)
    try:
        from storage.selectors import forget_usage

        forget_usage(storage=image.storage)
    except ImportError:
        pass
