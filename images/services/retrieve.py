"""'Retrieve existing images' (seed 003): import the image files found under a directory of a standalone
storage's mount path, each as its own import through the same pipeline as an upload or a URL.

    found = storage_images_find(storage=storage, directory="incoming")
    started, refused = storage_images_retrieve(storage=storage, directory="incoming", tenant=t, actor=u)

Each file becomes an image of `tenant` (source "storage scan") whose bytes a worker reads with a
file:// fetch confined to the storage's mount path; the file itself is left where it is.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

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
STORE_DIRECTORIES = {"chunks", "manifests", "tmp"}
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


def scan_directory(*, storage: ImageStorage, directory: str) -> Path:
    """The directory to scan, checked to be inside the storage's mount path (ValidationError if not)."""
    if storage.kind != ImageStorage.Kind.STANDALONE or not storage.mount_path:
        raise ValidationError(
            _("Only a standalone storage has a mount path to retrieve images from."), code="kind"
        )
    mount = Path(os.path.realpath(storage.mount_path))
    relative = (directory or "").strip().lstrip("/")
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
    if not path.is_dir():
        raise ValidationError(_("There is no directory %(path)s.") % {"path": path}, code="missing")
    return path


def _detect(path: Path) -> tuple[str, str]:
    from oslo_utils.imageutils import format_inspector

    try:
        inspector = format_inspector.detect_file_format(str(path))
    except (format_inspector.ImageFormatError, OSError) as error:
        return "", _("its format cannot be told (%(error)s)") % {"error": error}
    name = inspector.NAME if inspector is not None else "raw"
    if name not in DETECTED:
        return "", _("%(format)s images cannot be imported") % {"format": name}
    return DETECTED[name], ""


def storage_images_find(*, storage: ImageStorage, directory: str) -> list[FoundImage]:
    """The image files under the directory (sub-directories included), by name."""
    root = scan_directory(storage=storage, directory=directory)
    mount = Path(os.path.realpath(storage.mount_path))
    imported = set(
        UploadSession.objects.filter(image__storage=storage, image__source=Image.Source.STORAGE_SCAN)
        .exclude(image__status__in=[Image.Status.FAILED, Image.Status.DELETED])
        .values_list("source_url", flat=True)
    )
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == mount:
            dirnames[:] = [d for d in dirnames if d not in STORE_DIRECTORIES]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = here / filename
            extension = path.suffix.lower()
            if (
                filename.startswith(".")
                or extension not in EXTENSIONS
                or path.is_symlink()
                or not path.is_file()
            ):
                continue
            disk_format, problem = EXTENSIONS[extension], ""
            if disk_format is None:
                disk_format, problem = _detect(path)
            found.append(
                FoundImage(
                    path=path,
                    size=path.stat().st_size,
                    disk_format=disk_format or "",
                    problem=problem,
                    imported=file_url(path) in imported,
                )
            )
            if len(found) >= MAX_FILES:
                return found
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
                    url=file_url(item.path),
                )
            )
        except ValidationError as error:
            refused.append((item, " ".join(error.messages)))
    return started, refused
