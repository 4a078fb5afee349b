"""Reads of image storages: what a tenant may see and choose, and usage (cached briefly)."""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import QuerySet

from .backends import StorageError, Usage, get_backend
from .models import ImageStorage

USAGE_CACHE_SECONDS = 30
UNREACHABLE = "unreachable"


def storage_list_for_tenant(*, tenant=None) -> QuerySet[ImageStorage]:
    """Storages shown to tenants on the read-only storage page: every enabled one."""
    return ImageStorage.objects.filter(enabled=True).order_by("name", "pk")


def storage_choices_for_import(*, tenant=None) -> QuerySet[ImageStorage]:
    """Storages a tenant may pick when importing an image: enabled and connected."""
    return ImageStorage.objects.filter(enabled=True, state=ImageStorage.State.CONNECTED).order_by(
        "name", "pk"
    )


def _usage_cache_key(storage: ImageStorage) -> str:
    return f"storage-usage:{storage.pk}"


def storage_usage(*, storage: ImageStorage, fresh: bool = False) -> Usage | None:
    """The storage's usage, or None when it cannot be read (the storage is unreachable)."""
    key = _usage_cache_key(storage)
    if not fresh:
        cached = cache.get(key)
        if cached is not None:
            return None if cached == UNREACHABLE else cached
    try:
        usage = get_backend(storage).usage()
    except StorageError:
        # Kept as briefly as a usage: a storage server that does not answer costs each page that shows
        # its usage a connection timeout otherwise.
        cache.set(key, UNREACHABLE, USAGE_CACHE_SECONDS)
        return None
    cache.set(key, usage, USAGE_CACHE_SECONDS)
    return usage


def forget_usage(*, storage: ImageStorage) -> None:
    cache.delete(_usage_cache_key(storage))


def usage_bars(usage: Usage | None) -> dict | None:
    """Figures and bar widths (whole percents) for a Usage, or None when it is unknown."""
    if usage is None:
        return None
    total = max(usage.total, 1)
    other = max(usage.total - usage.used - usage.free, 0)
    return {
        "usage": usage,
        "used_pct": min(100, round(usage.used * 100 / total)),
        "other_pct": min(100, round(other * 100 / total)),
        "free_pct": min(100, round(usage.free * 100 / total)),
        "other": other,
        "dedup_ratio": f"{usage.dedup_ratio:.2f}",
    }
