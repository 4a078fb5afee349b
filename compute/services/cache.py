"""The image cache: an image's bytes uploaded once into a host's pool (virStorageVolUpload, streamed from
the image storage in constant memory), keyed by SHA256; every VM's disk is a qcow2 overlay on it."""

import logging

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from imageconsole.core.queues import connection
from imageconsole.core.words import gettext as _
from images.models import Image, ImageReplica
from storage.backends import StorageError, get_backend
from tenants.services import log

from .. import hypervisor
from ..hypervisor import HypervisorError
from ..models import ComputeHost, ImageCacheEntry, VirtualMachine

logger = logging.getLogger("compute.cache")
LOCK_TIMEOUT = 6 * 3600


class CacheError(Exception):
    pass


def _replica(image: Image) -> ImageReplica:
    replica = (
        ImageReplica.objects.filter(image=image, state=ImageReplica.State.READY)
        .select_related("storage")
        .order_by("created_at")
        .first()
    )
    if replica is None:
        raise CacheError(_("The image “%(name)s” has no stored copy to upload.") % {"name": image.name})
    return replica


def cache_ensure(*, host: ComputeHost, image: Image) -> ImageCacheEntry:
    """The ready cache entry of `image` on `host`, uploading the image first if the host lacks it.

    One upload per host and SHA256 at a time (a Redis lock): a second VM waits for the first's upload
    and reuses it.
    """
    if not image.sha256:
        raise CacheError(_("The image “%(name)s” has no SHA256 yet.") % {"name": image.name})
    lock = connection("default").lock(
        f"compute-cache:{host.pk}:{image.sha256}", timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_TIMEOUT
    )
    with lock:
        entry, _created = ImageCacheEntry.objects.get_or_create(
            host=host,
            sha256=image.sha256,
            disk_format=image.disk_format,
            defaults={"image": image, "image_name": image.name, "volume": f"ic-cache-{image.sha256}"},
        )
        if entry.state == ImageCacheEntry.State.READY:
            try:
                present = hypervisor.volume_path(host, entry.volume)
            except HypervisorError as error:
                raise CacheError(str(error)) from error
            if present:
                ImageCacheEntry.objects.filter(pk=entry.pk).update(last_used_at=timezone.now())
                entry.refresh_from_db()
                return entry
            logger.warning("cache volume %s vanished from %s; uploading again", entry.volume, host)
        return _upload(entry=entry, host=host, image=image)


def _upload(*, entry: ImageCacheEntry, host: ComputeHost, image: Image) -> ImageCacheEntry:
    replica = _replica(image)
    backend = get_backend(replica.storage)
    size = replica.size or image.size
    ImageCacheEntry.objects.filter(pk=entry.pk).update(
        state=ImageCacheEntry.State.UPLOADING, bytes_uploaded=0, size=size, error="", image=image
    )
    last = [0.0]

    def progress(done: int) -> None:
        now = timezone.now().timestamp()
        if now - last[0] >= 1:
            last[0] = now
            ImageCacheEntry.objects.filter(pk=entry.pk).update(bytes_uploaded=done)

    try:
        # The storage's data network, when it has one, carries the image; the control address only
        # finds the address there.
        reader = backend.data_reader()
        if reader is not backend:
            logger.info(
                "image %s is read from storage %s over its data network %s",
                image.pk,
                replica.storage.name,
                replica.storage.data_network,
            )
        path = hypervisor.upload_volume(
            host,
            name=entry.volume,
            size=size,
            blocks=reader.read_range(replica.key, 0, size),
            progress=progress,
        )
    except (HypervisorError, StorageError) as error:
        logger.warning("uploading image %s to %s failed: %s", image.pk, host, error)
        ImageCacheEntry.objects.filter(pk=entry.pk).update(
            state=ImageCacheEntry.State.FAILED, error=str(error)
        )
        raise CacheError(
            _("Uploading the image to %(host)s failed: %(error)s") % {"host": host.name, "error": error}
        ) from error
    ImageCacheEntry.objects.filter(pk=entry.pk).update(
        state=ImageCacheEntry.State.READY,
        path=path,
        bytes_uploaded=size,
        last_used_at=timezone.now(),
        updated_at=timezone.now(),
    )
    entry.refresh_from_db()
    logger.info("image %s uploaded to %s (%d bytes)", image.pk, host, size)
    return entry


def cache_entries_unused(*, host: ComputeHost | None = None):
    entries = ImageCacheEntry.objects.annotate(vm_count=Count("vms")).filter(vm_count=0)
    return entries.filter(host=host) if host is not None else entries


def cache_cleanup(*, entries, actor=None) -> int:
    """Remove cache entries no VM uses (their volumes first); entries in use are left. The count removed."""
    removed = 0
    for entry in entries.select_related("host"):
        with transaction.atomic():
            locked = ImageCacheEntry.objects.select_for_update().filter(pk=entry.pk).first()
            if locked is None or VirtualMachine.objects.filter(cache_entry=locked).exists():
                continue
            try:
                hypervisor.delete_volumes(entry.host, [entry.volume])
            except HypervisorError as error:
                logger.warning("cache clean-up on %s: %s", entry.host, error)
                continue
            locked.delete()
            removed += 1
            log(action="compute_cache.cleanup", actor=actor, target=entry, message=entry.volume)
    return removed


def cache_forget_image(*, image_id, tenant_id=None) -> None:
    """An image is expunged (images.hooks.before_expunge): its copies in the hosts' caches go with it.

    A copy is keyed by its bytes (SHA256 and format): when another image that is not being expunged has
    the same bytes, the copy is kept for that image. One a VM still uses stays (the recycle bin refuses
    to expunge an image with VMs; a VM created from another image with the same bytes may use it); one
    whose host does not answer stays too, logged, for the cache clean-up of Django admin.
    """
    image = Image.objects.filter(pk=image_id).only("sha256", "disk_format").first()
    entries = ImageCacheEntry.objects.filter(image_id=image_id)
    if image is not None and image.sha256:
        # The image's entries all hold its bytes (one per host): one heir serves them all.
        heir = (
            Image.objects.filter(sha256=image.sha256, disk_format=image.disk_format)
            .exclude(pk=image_id)
            .exclude(status=Image.Status.DELETING)
            .first()
        )
        if heir is not None:
            entries.update(image=heir, image_name=heir.name)
    cache_cleanup(entries=ImageCacheEntry.objects.filter(image_id=image_id))
