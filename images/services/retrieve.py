"""'Retrieve existing images' (seed 003): import the image files found under a directory of a standalone
storage's mount path, each as its own import through the same pipeline as an upload or a URL.

    found = storage_images_find(storage=storage, directory="incoming")
    started, refused = storage_images_retrieve(storage=storage, directory="incoming", tenant=t, actor=u)

Each file becomes an image of `tenant` (source "storage scan") whose bytes a worker reads with a
file:// fetch confined to the storage's mount path; the file itself is left where it is. On a standalone
(server) storage the directory is listed, and the files read, over the storage's own SFTP connection and
key (`fetch_storage_file`); the recorded URL is sftp://user@host:port/path, only a label: the worker
reads the path from the storage, whatever host the label names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from storage.backends import get_backend
from storage.backends.base import StorageError
from storage.models import ImageStorage

from ..catalog import NAME_MAX_LENGTH, NAME_PUNCTUATION
from ..models import Image, UploadSession

# By extension; `.img` files are told apart by their content (cloud images are often qcow2).
EXTENSIONS = {
    ".qcow2": "qcow2",
    ".qcow": "qcow2",
    ".img": None,
    ".raw": "raw",
    ".vmdk": "vmdk",
    ".vhd": "vhd",
    ".vhdx": "vhdx",
    ".ova": "ova",
    ".iso": "iso",
}
# What oslo's format inspector calls a format -> the format an import claims.
DETECTED = {
    "qcow2": "qcow2",
    "raw": "raw",
    "gpt": "raw",
    "luks": "raw",
    "iso": "iso",
    "vmdk": "vmdk",
    "vhd": "vhd",
    "vhdx": "vhdx",
}
# The standalone store's own data at the top of its mount path: never images to retrieve.
STORE_DIRECTORIES = {"chunks", "manifests", "tmp", "journals", "exports"}
MAX_FILES = 500


@dataclasses.dataclass(frozen=True)
class FoundImage:
    path: Path
    size: int
    disk_format: str  # "" when the file cannot be imported; then `problem` says why
    problem: str = ""
    imported: bool = False  # an earlier retrieval already imported this file (and it did not fail)

    @property
    def importable(self) -> bool:
        return bool(self.disk_format) and not self.imported


def file_url(path: Path) -> str:
    return "file://" + quote(str(path))


def source_url_for(storage: ImageStorage, path) -> str:
    """The URL an import retrieved from `path` records (file://, or sftp:// naming the storage server)."""
    if storage.is_server:
        host = f"[{storage.host}]" if ":" in storage.host else storage.host
        return f"sftp://{quote(storage.ssh_username)}@{host}:{storage.ssh_port}" + quote(str(path))
    return file_url(path)


def scan_path_of(url: str) -> str:
    """The path of the file a "storage scan" import's URL names."""
    return unquote(urlsplit(url).path)


def server_scan_path(storage: ImageStorage, url: str) -> str:
    """The path on the server of a "storage scan" import of a server storage, checked again when the worker
    reads it: a file under the mount path with an image extension, not in the store's own data and not
    a dot name (ValidationError otherwise); the backend refuses symlinks and paths outside the mount path."""
    path = PurePosixPath(scan_path_of(url))
    mount = PurePosixPath(get_backend(storage).real_path(storage.mount_path))
    relative = path.relative_to(mount).parts if path.is_relative_to(mount) else ()
    if not relative or ".." in relative:
        raise ValidationError(
            _("%(directory)s is outside the storage's mount path %(mount)s.")
            % {"directory": path, "mount": mount},
            code="outside",
        )
    if relative[0] in STORE_DIRECTORIES:
        raise ValidationError(
            _("%(directory)s holds the storage's own data, not image files.") % {"directory": path},
            code="store_data",
        )
    if any(part.startswith(".") for part in relative) or path.suffix.lower() not in EXTENSIONS:
        raise ValidationError(
            _("%(path)s is not an image file that can be retrieved.") % {"path": path}, code="not_image"
        )
    return str(path)


def _server_real_path(backend, path: PurePosixPath) -> PurePosixPath | None:
    try:
        return PurePosixPath(backend.real_path(path))
    except FileNotFoundError:
        return None


def scan_directory(*, storage: ImageStorage, directory: str) -> Path:
    """The directory to scan, checked to be inside the storage's mount path (ValidationError if not).

    On a server storage, a PurePosixPath resolved by the server."""
    if not (storage.is_standalone or storage.is_server) or not storage.mount_path:
        raise ValidationError(
            _("Only a standalone storage has a mount path to retrieve images from."), code="kind"
        )
    relative = (directory or "").strip().lstrip("/")
    if storage.is_server:
        backend = get_backend(storage)
        mount = _server_real_path(backend, PurePosixPath(storage.mount_path))
        path = _server_real_path(backend, PurePosixPath(storage.mount_path) / relative)
        if mount is None:
            raise ValidationError(
                _("There is no directory %(path)s.") % {"path": storage.mount_path}, code="missing"
            )
        if path is None:
            path = PurePosixPath(os.path.normpath(mount / relative))
    else:
        mount = Path(os.path.realpath(storage.mount_path))
        path = Path(os.path.realpath(mount / relative))
    if path != mount and not path.is_relative_to(mount):
        raise ValidationError(
            _("%(directory)s is outside the storage's mount path %(mount)s.")
            % {"directory": directory, "mount": mount},
            code="outside",
        )
    if path != mount and path.relative_to(mount).parts[0] in STORE_DIRECTORIES:
        raise ValidationError(
            _("%(directory)s holds the storage's own data, not image files.") % {"directory": directory},
            code="store_data",
        )
    if storage.is_server:
        entries = None
        try:
            entries = backend.list_directory(path)
        except OSError:
            pass
        if entries is None:
            raise ValidationError(_("There is no directory %(path)s.") % {"path": path}, code="missing")
    elif not path.is_dir():
        raise ValidationError(_("There is no directory %(path)s.") % {"path": path}, code="missing")
    return path


def _detect_stream(stream):
    """detect_file_format on an open file (one read through it, stopping once the format is known)."""
    from oslo_utils.imageutils import format_inspector

    wrapper = format_inspector.InspectWrapper(stream)
    try:
        while True:
            if wrapper.format:
                return wrapper.format
            if not wrapper.read(64 * 1024):
                break
    finally:
        wrapper.close()
    return wrapper.format


def _detect(path: Path, backend=None) -> tuple[str, str]:
    from oslo_utils.imageutils import format_inspector

    try:
        if backend is not None:
            with backend.open_mount_file(path) as (remote, _size):
                inspector = _detect_stream(remote)
        else:
            inspector = format_inspector.detect_file_format(str(path))
    except (format_inspector.ImageFormatError, OSError, StorageError) as error:
        return "", _("its format cannot be told (%(error)s)") % {"error": error}
    name = inspector.NAME if inspector is not None else "raw"
    if name not in DETECTED:
        return "", _("%(format)s images cannot be imported") % {"format": name}
    return DETECTED[name], ""


def _walk_local(root: Path, mount: Path):
    """(path, size) of the regular files under root, in name order, symlinks and dot names left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == mount:
            dirnames[:] = [d for d in dirnames if d not in STORE_DIRECTORIES]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = here / filename
            if filename.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            yield path, path.stat().st_size


def _walk_server(backend, root: PurePosixPath, mount: PurePosixPath):
    """The same over SFTP: entries as lstat sees them, so a symlink (to a file or a directory, inside the
    mount path or out of it) is neither listed nor followed."""
    pending = [root]
    while pending:
        here = pending.pop()
        entries = sorted(backend.list_directory(here))
        directories = []
        for name, mode, size in entries:
            if name.startswith(".") or (here == mount and name in STORE_DIRECTORIES):
                continue
            if stat.S_ISDIR(mode):
                directories.append(here / name)
            elif stat.S_ISREG(mode):
                yield here / name, size
        pending.extend(reversed(directories))


def storage_images_find(*, storage: ImageStorage, directory: str) -> list[FoundImage]:
    """The image files under the directory (sub-directories included), by name.

    A server storage that cannot be reached raises StorageError."""
    root = scan_directory(storage=storage, directory=directory)
    imported = {
        scan_path_of(url)
        for url in UploadSession.objects.filter(
            image__storage=storage, image__source=Image.Source.STORAGE_SCAN
        )
        .exclude(image__status__in=[Image.Status.FAILED, Image.Status.DELETED])
        .values_list("source_url", flat=True)
    }
    if storage.is_server:
        backend = get_backend(storage)
        files = _walk_server(backend, root, PurePosixPath(backend.real_path(storage.mount_path)))
    else:
        backend = None
        files = _walk_local(root, Path(os.path.realpath(storage.mount_path)))
    found = []
    for path, size in files:
        extension = path.suffix.lower()
        if extension not in EXTENSIONS:
            continue
        disk_format, problem = EXTENSIONS[extension], ""
        if disk_format is None:
            disk_format, problem = _detect(path, backend)
        found.append(
            FoundImage(
                path=path,
                size=size,
                disk_format=disk_format or "",
                problem=problem,
                imported=str(path) in imported,
            )
        )
        if len(found) >= MAX_FILES:
            break
    return found


def image_name_for(path: Path) -> str:
    """A name that follows the image name rule, made from the file's name."""
    name = "".join(ch if ch.isalnum() or ch in NAME_PUNCTUATION else "-" for ch in path.stem)
    name = re.sub(r"-{2,}", "-", name).strip(" ")
    return (name or "image")[:NAME_MAX_LENGTH].strip(" ")


def storage_images_retrieve(
    *, storage: ImageStorage, directory: str, tenant, actor=None, request=None, paths=None
) -> tuple[list[Image], list[tuple[FoundImage, str]]]:
    """Start an import for each image file found (or for `paths` among them).

    Returns the images started and the files not started with the reason.
    """
    from .imports import image_import_create

    started, refused = [], []
    for item in storage_images_find(storage=storage, directory=directory):
        if paths is not None and str(item.path) not in paths:
            continue
        if item.imported:
            refused.append((item, _("imported already")))
            continue
        if not item.disk_format:
            refused.append((item, item.problem))
            continue
        iso = item.disk_format == "iso"
        fields = {
            "name": image_name_for(item.path),
            "description": _("Retrieved from %(path)s") % {"path": item.path},
            "kind": Image.Kind.ISO if iso else Image.Kind.SYSTEM,
            "disk_format": item.disk_format,
            "source_format": item.disk_format,
            "os_type": Image.OSType.OTHER,
            "storage": storage,
            "source": Image.Source.STORAGE_SCAN,
        }
        try:
            started.append(
                image_import_create(
                    tenant=tenant,
                    fields=fields,
                    actor=actor,
                    request=request,
                    upload_length=item.size,
                    url=source_url_for(storage, item.path),
                )
            )
        except ValidationError as error:
            refused.append((item, " ".join(error.messages)))
    return started, refused
