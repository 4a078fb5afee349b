"""The import pipeline's settings, read when used (never at import time), with working defaults.

Environment variables (see settings.py and the README's configuration table):
IMPORT_QEMU_IMG_ADDRESS_SPACE, IMPORT_QEMU_IMG_CPU_SECONDS, IMPORT_QEMU_IMG_CHECK_CPU_SECONDS,
IMPORT_CONVERT_ADDRESS_SPACE, IMPORT_UPLOAD_EXPIRY_HOURS, IMPORT_UPLOAD_CHUNK_MB, IMPORT_HEARTBEAT_SECONDS,
IMPORT_DECOMPRESS_MAX_RATIO.
"""

from pathlib import Path

from django.conf import settings

GiB = 1024**3


def _get(name: str, default):
    return getattr(settings, name, default)


def qemu_img_address_space() -> int:
    """Address-space limit (bytes) of qemu-img info/check/measure on untrusted files."""
    return int(_get("IMPORT_QEMU_IMG_ADDRESS_SPACE", GiB))


def qemu_img_cpu_seconds() -> int:
    return int(_get("IMPORT_QEMU_IMG_CPU_SECONDS", 30))


def qemu_img_check_cpu_seconds() -> int:
    return int(_get("IMPORT_QEMU_IMG_CHECK_CPU_SECONDS", 600))


def convert_address_space() -> int:
    return int(_get("IMPORT_CONVERT_ADDRESS_SPACE", 2 * GiB))


def upload_expiry_hours() -> float:
    """An upload not completed within this long fails (tus expiration); defaults to STAGING_EXPIRY_HOURS."""
    return float(_get("IMPORT_UPLOAD_EXPIRY_HOURS", _get("STAGING_EXPIRY_HOURS", 24)))


def upload_chunk_bytes() -> int:
    """Size of the tus PATCHes the browser's upload sends (IMPORT_UPLOAD_CHUNK_MB); 0: one PATCH."""
    return max(int(_get("IMPORT_UPLOAD_CHUNK_MB", 32)), 0) * 1024 * 1024


def heartbeat_seconds() -> int:
    """A running import job refreshes its heartbeat every second; without one this long, it is lost."""
    return int(_get("IMPORT_HEARTBEAT_SECONDS", 30))


def decompress_max_ratio() -> float:
    """A compressed import expanding more than this many times (past 64 MiB) is a bomb; 0: no limit."""
    return float(_get("IMPORT_DECOMPRESS_MAX_RATIO", 1000))


def max_virtual_size() -> int:
    from .catalog import TARGET_SIZE_MAX_GB

    return TARGET_SIZE_MAX_GB * GiB


def staging_root() -> Path:
    return Path(settings.STAGING_ROOT)
