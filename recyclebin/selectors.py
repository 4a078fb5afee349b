"""Tenant-scoped reads of the recycle bin: the tenant's deleted images (and those being destroyed),
within a sub-account's project groups. Another tenant's image, or one not in the bin, is not found."""

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils.translation import gettext as _

from images.models import Image
from images.selectors import images_deleted
from tenants.models import Membership, Tenant


def images_in_bin(*, tenant: Tenant, membership: Membership | None) -> QuerySet[Image]:
    return images_deleted(tenant=tenant, membership=membership).select_related(
        "project_group", "storage", "deleted_by"
    )


def bin_image_get(*, tenant: Tenant, membership: Membership | None, pk) -> Image:
    try:
        return images_in_bin(tenant=tenant, membership=membership).get(pk=pk)
    except (Image.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise Http404(_("No such image in the recycle bin.")) from exc


def bin_totals(*, tenant: Tenant, membership: Membership | None) -> dict:
    """How many images the bin holds and their bytes (which still count against the quota's size)."""
    return images_deleted(tenant=tenant, membership=membership).aggregate(
        images=Count("pk"),
        bytes=Coalesce(Sum("size"), 0),
        deleting=Count("pk", filter=Q(status=Image.Status.DELETING)),
    )
