"""What links and exports share: refusals, file names, the replica a download reads."""

from django.db import transaction

from imageconsole.core.words import gettext as _
from tenants.services import log

from ...models import DownloadLink, DownloadSettings, Image, ImageReplica

# Presigned URLs cannot outlive seven days (S3's limit); links never do either.
PRESIGN_MAX_SECONDS = 7 * 86400
FILE_EXTENSIONS = {"raw": "img", "vhd": "vhd", "vmdk": "vmdk", "qcow2": "qcow2", "iso": "iso"}


class DownloadRefused(Exception):
    """A link or export cannot be made now; the message says why and what to do."""

    def __init__(self, message: str, *, code: str = "refused", status: int = 409):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class LinkGone(Exception):
    """The link existed but no longer works (expired, revoked, its image or export gone): 410."""

    def __init__(self, message: str, *, link: DownloadLink | None = None):
        super().__init__(message)
        self.message = message
        self.link = link


def image_filename(image: Image) -> str:
    return f"{image.name}.{FILE_EXTENSIONS.get(image.disk_format, image.disk_format)}"


def ready_replica(image: Image) -> ImageReplica | None:
    """The replica a download reads: on the image's own storage when it has a ready one there."""
    replicas = list(
        ImageReplica.objects.filter(image=image, state=ImageReplica.State.READY).select_related("storage")
    )
    replicas.sort(key=lambda r: (r.storage_id != image.storage_id, r.created_at))
    return replicas[0] if replicas else None


def download_settings_update(
    *, link_validity_hours: int, export_retention_days: int, actor, request=None
) -> DownloadSettings:
    """The administrators' link validity and export retention (Django admin), logged. New links and
    exports use them; existing ones keep the expiry they were given."""
    with transaction.atomic():
        row = DownloadSettings.current()
        row.link_validity_hours = link_validity_hours
        row.export_retention_days = export_retention_days
        row.full_clean()
        row.save()
        log(
            action="images.download_settings",
            actor=actor,
            target=row,
            message=_("Download links valid %(hours)d hours; exports kept %(days)d days (0: until deleted)")
            % {"hours": link_validity_hours, "days": export_retention_days},
            request=request,
        )
    return row
