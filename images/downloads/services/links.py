"""Download links: a 256-bit token (only its SHA256 kept), revoke, resolve, log each download start."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from imageconsole.core.words import gettext as _
from tenants.services import log

from ...models import DownloadLink, DownloadSettings, ExportedImage, Image
from .common import PRESIGN_MAX_SECONDS, DownloadRefused, LinkGone, image_filename, ready_replica


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_create(
    *, image: Image, actor, export: ExportedImage | None = None, request=None
) -> tuple[DownloadLink, str]:
    """A new link to the image (or to one of its exports), valid for the administrators' link validity.
    Returns the link and its token; the token is never stored and cannot be shown again."""
    if image.status != Image.Status.AVAILABLE:
        raise DownloadRefused(
            _("“%(name)s” is %(status)s: only available images can be downloaded.")
            % {"name": image.name, "status": image.get_status_display()},
            code="not_available",
        )
    if export is not None:
        if export.image_id != image.pk:
            raise DownloadRefused(_("That export belongs to another image."), code="wrong_image")
        if export.status != ExportedImage.Status.READY:
            raise DownloadRefused(
                _("The %(format)s export of “%(name)s” is not ready yet; wait until it is exported.")
                % {"format": export.format, "name": image.name},
                code="export_not_ready",
            )
    elif ready_replica(image) is None:
        raise DownloadRefused(
            _("No stored copy of “%(name)s” is ready.") % {"name": image.name}, code="no_replica"
        )
    token = secrets.token_urlsafe(32)
    hours = DownloadSettings.current().link_validity_hours
    with transaction.atomic():
        link = DownloadLink.objects.create(
            tenant=image.tenant,
            image=image,
            export=export,
            token_hash=hash_token(token),
            filename=export.filename if export is not None else image_filename(image),
            created_by=actor if actor is not None and actor.pk else None,
            created_by_name=actor.get_username() if actor is not None else "",
            expires_at=timezone.now() + timedelta(hours=hours),
        )
        log(
            action="image.download_link.create",
            tenant=image.tenant,
            actor=actor,
            target=image,
            message=_("Link to %(file)s, valid until %(expires)s")
            % {
                "file": link.filename,
                "expires": timezone.localtime(link.expires_at).strftime("%Y-%m-%d %H:%M %Z"),
            },
            request=request,
        )
    return link, token


def link_path(link: DownloadLink, token: str) -> str:
    from django.urls import reverse

    return reverse("download-file", kwargs={"token": token, "filename": link.filename})


def link_revoke(*, link: DownloadLink, actor, request=None) -> DownloadLink:
    """Stop a link at once; revoking a revoked link changes nothing."""
    with transaction.atomic():
        link = DownloadLink.objects.select_for_update().select_related("image").get(pk=link.pk)
        if link.revoked_at is None:
            link.revoked_at = timezone.now()
            link.revoked_by_name = actor.get_username() if actor is not None else ""
            link.save(update_fields=["revoked_at", "revoked_by_name", "updated_at"])
            log(
                action="image.download_link.revoke",
                tenant=link.tenant,
                actor=actor,
                target=link.image,
                message=_("Link to %(file)s made by %(user)s")
                % {
                    "file": link.filename,
                    "user": link.created_by_name or "—",
                },
                request=request,
            )
    return link


def link_resolve(token: str, filename: str) -> DownloadLink:
    """The live link of `token`. Raises DownloadLink.DoesNotExist for an unknown token (or a file name
    that is not the link's), LinkGone for one that expired, was revoked, or whose file is gone."""
    digest = hash_token(token)
    link = (
        DownloadLink.objects.select_related("image", "export", "export__storage", "tenant")
        .filter(token_hash=digest)
        .first()
    )
    # The lookup is by the hash; the comparison of what was found runs in constant time all the same.
    if link is None or not hmac.compare_digest(link.token_hash, digest) or link.filename != filename:
        raise DownloadLink.DoesNotExist
    if link.revoked_at is not None:
        raise LinkGone(
            _("This download link was revoked on %(when)s. Ask for a new link.")
            % {"when": timezone.localtime(link.revoked_at).strftime("%Y-%m-%d %H:%M %Z")},
            link=link,
        )
    if link.expires_at <= timezone.now():
        raise LinkGone(
            _(
                "This download link expired on %(when)s. A link works for a limited time; create a new one "
                "in the console."
            )
            % {"when": timezone.localtime(link.expires_at).strftime("%Y-%m-%d %H:%M %Z")},
            link=link,
        )
    if link.image.status != Image.Status.AVAILABLE:
        raise LinkGone(_("The image of this link is no longer available (it was deleted)."), link=link)
    if link.export_id is not None and link.export.status != ExportedImage.Status.READY:
        raise LinkGone(_("The exported file of this link was deleted."), link=link)
    return link


def link_seconds_left(link: DownloadLink) -> int:
    return max(1, min(PRESIGN_MAX_SECONDS, int((link.expires_at - timezone.now()).total_seconds())))


def log_download(*, link: DownloadLink, request, ranges: str) -> None:
    """One row per download start: the link's maker, the client's address (from the request), the range."""
    log(
        action="image.download",
        tenant=link.tenant,
        actor=link.created_by,
        target=link.image,
        message=_("%(file)s, range %(range)s, through a link made by %(user)s")
        % {"file": link.filename, "range": ranges, "user": link.created_by_name or "—"},
        request=request,
    )
