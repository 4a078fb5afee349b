"""Tenant-scoped reads of download links and exports."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from tenants.selectors import scope_q

from ..models import DownloadLink, ExportedImage, Image


def links_live(*, image: Image) -> QuerySet[DownloadLink]:
    """The image's links that still work, newest first."""
    return DownloadLink.objects.filter(image=image, revoked_at__isnull=True, expires_at__gt=timezone.now())


def link_get(*, image: Image, pk) -> DownloadLink:
    try:
        return DownloadLink.objects.get(image=image, pk=pk)
    except (DownloadLink.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such link.") from error


def exports_visible(*, tenant, membership) -> QuerySet[ExportedImage]:
    """The tenant's exports of images this membership may see (its project groups), never of a deleted
    image."""
    return (
        ExportedImage.objects.filter(tenant=tenant, image__tenant=tenant)
        .filter(scope_q(membership, field="image__project_group"))
        .exclude(image__status=Image.Status.DELETED)
        .select_related("image", "storage")
    )


def export_get(*, tenant, membership, pk) -> ExportedImage:
    try:
        return exports_visible(tenant=tenant, membership=membership).get(pk=pk)
    except (ExportedImage.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such export.") from error
