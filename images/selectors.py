"""Tenant-scoped reads of images. Views, the API and the export reach images only through these.

What a tenant sees: its own images (limited to a sub-account's project groups) and the available images
other tenants share with it (with it by name, or globally), never a deleted one. Another tenant's image
that is not shared is simply not found.
"""

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from tenants.models import Membership, Tenant
from tenants.selectors import scope_q

from .models import Image

# The list's two tabs (seed 000): self-made images (system and volume) and ISO images.
SELF_MADE_KINDS = (Image.Kind.SYSTEM, Image.Kind.VOLUME)
ISO_KINDS = (Image.Kind.ISO,)
TAB_KINDS = {"self": SELF_MADE_KINDS, "iso": ISO_KINDS}


def _shared_with_q(tenant: Tenant) -> Q:
    """Other tenants' available images shared with `tenant`. A subquery, not a join: a join on the
    shared_with table would repeat an image once per tenant it is shared with."""
    through = Image.shared_with.through
    shared_here = through.objects.filter(image_id=OuterRef("pk"), tenant_id=tenant.pk)
    return Q(status=Image.Status.AVAILABLE) & (
        Q(sharing=Image.Sharing.GLOBAL) | (Q(sharing=Image.Sharing.TENANTS) & Exists(shared_here))
    )


def images_owned(*, tenant: Tenant, membership: Membership | None) -> QuerySet[Image]:
    """The tenant's own images this membership may act on (not deleted, within its project groups)."""
    return (
        Image.objects.for_tenant(tenant)
        .filter(scope_q(membership, field="project_group"))
        .exclude(status=Image.Status.DELETED)
    )


def images_visible(
    *, tenant: Tenant, membership: Membership | None, kinds=None, include_shared: bool = True
) -> QuerySet[Image]:
    """Every image the list shows: own images plus images shared with the tenant, minus deleted ones.

    `kinds` narrows to a tab (TAB_KINDS). Rows come with their project group, storage and owning tenant
    so a page renders without a query per row.
    """
    own = Q(tenant=tenant) & scope_q(membership, field="project_group")
    visible = own | (~Q(tenant=tenant) & _shared_with_q(tenant)) if include_shared else own
    queryset = Image.objects.filter(visible).exclude(status=Image.Status.DELETED)
    if kinds:
        queryset = queryset.filter(kind__in=list(kinds))
    return queryset.select_related("project_group", "storage", "tenant")


def image_get(*, tenant: Tenant, membership: Membership | None, pk) -> Image:
    """One image this tenant may see; anything else (another tenant's, deleted, a bad id) is a 404."""
    try:
        return images_visible(tenant=tenant, membership=membership).get(pk=pk)
    except (Image.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        # A malformed UUID is as "not found" as another tenant's one.
        raise Http404("No such image.") from exc


def image_is_own(*, image: Image, tenant: Tenant) -> bool:
    """False for an image another tenant shares with this one: it is read-only here."""
    return image.tenant_id == tenant.pk
