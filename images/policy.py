"""Which image actions a request may take on an image: the same answers hide buttons and guard the POSTs
(console and API alike), as Horizon's `allowed(request, obj)` does.

An image another tenant shares with this one is visible here but read-only.
"""

from django.utils.translation import gettext as _

from tenants.permissions import can_manage, can_view

from . import hooks
from .models import Image
from .services.lifecycle import DELETABLE


def is_own(request, image: Image) -> bool:
    return request.tenant is not None and image.tenant_id == request.tenant.pk


def can_change(request, image: Image) -> bool:
    """Edit name, remarks and labels (in any status), enable or disable, set sharing."""
    return is_own(request, image) and can_manage(request) and image.status != Image.Status.DELETED


def can_delete(request, image: Image) -> bool:
    return can_change(request, image) and image.status in DELETABLE


def can_download(request, image: Image) -> bool:
    """Create download links (and revoke one's own). A view-only sub-account may: downloading reads."""
    return is_own(request, image) and can_view(request) and image.status == Image.Status.AVAILABLE


def can_export(request, image: Image) -> bool:
    """Export writes a file into the storage, so it needs the manage permission."""
    return (
        can_change(request, image) and image.status == Image.Status.AVAILABLE and image.kind != Image.Kind.ISO
    )


def can_revoke(request, link) -> bool:
    return can_manage(request) or (request.user.is_authenticated and link.created_by_id == request.user.pk)


def can_share_globally(request) -> bool:
    return request.user.is_authenticated and request.user.is_staff


def row_actions(request, image: Image) -> dict[str, bool]:
    """Everything a row's operations menu needs to know, computed without queries."""
    change = can_change(request, image)
    return {
        "own": is_own(request, image),
        "change": change,
        "delete": change and image.status in DELETABLE,
        "cancel": change and image.status == Image.Status.UPLOADING,
        # Create VM: a system image, available and enabled, for members who may change things.
        "use": can_manage(request)
        and image.status == Image.Status.AVAILABLE
        and image.enabled
        and image.kind == Image.Kind.SYSTEM,
        "download": can_download(request, image),
        "export": change and image.status == Image.Status.AVAILABLE and image.kind != Image.Kind.ISO,
    }


def deletion_wording(tenant) -> dict:
    """What the delete buttons and confirmations say under the tenant's deletion policy (seed 003: "Delete"
    under immediate deletion, "Move to recycle bin" otherwise), and until when a deleted image is kept."""
    plan = hooks.deletion_plan(tenant=tenant)
    return {
        "immediate": plan.expunge_now,
        "label": _("Delete") if plan.expunge_now else _("Move to recycle bin"),
        "purge_after": plan.purge_after,
    }
