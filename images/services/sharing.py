"""Sharing with chosen tenants, one tenant at a time, with the tenant's consent (OpenStack image members).

The image's owner adds or removes a tenant; the tenant accepts or rejects. Only an accepted share makes
the image visible to the tenant (images.selectors). `image_set_sharing` sets the whole list at once.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from tenants.models import Tenant
from tenants.services import log

from ..models import Image, ImageShare


class ShareExists(ValidationError):
    """The image is already shared with that tenant."""


@transaction.atomic
def image_share_add(*, image: Image, tenant: Tenant, actor=None, request=None) -> ImageShare:
    image = Image.objects.select_for_update().get(pk=image.pk)
    if tenant.pk == image.tenant_id:
        raise ValidationError(_("An image cannot be shared with the tenant that owns it."), code="own_tenant")
    if not tenant.is_active:
        raise ValidationError(_("That tenant is inactive."), code="inactive_tenant")
    if image.sharing == Image.Sharing.GLOBAL:
        raise ValidationError(
            _("The image is shared globally; every tenant sees it already."), code="global_image"
        )
    if ImageShare.objects.filter(image=image, tenant=tenant).exists():
        raise ShareExists(
            _("The image is already shared with %(tenant)s.") % {"tenant": tenant.name}, code="share_exists"
        )
    share = ImageShare.objects.create(image=image, tenant=tenant, status=ImageShare.Status.PENDING)
    if image.sharing != Image.Sharing.TENANTS:
        image.sharing = Image.Sharing.TENANTS
        image.save(update_fields=["sharing", "updated_at"])
    log(
        action="image.share",
        tenant=image.tenant,
        actor=actor,
        target=image,
        message=f"+{tenant.name}",
        request=request,
    )
    return share


@transaction.atomic
def image_share_remove(*, image: Image, tenant: Tenant, actor=None, request=None) -> None:
    image = Image.objects.select_for_update().get(pk=image.pk)
    deleted, _rows = ImageShare.objects.filter(image=image, tenant=tenant).delete()
    if not deleted:
        return
    if image.sharing == Image.Sharing.TENANTS and not ImageShare.objects.filter(image=image).exists():
        image.sharing = Image.Sharing.PRIVATE
        image.save(update_fields=["sharing", "updated_at"])
    log(
        action="image.share",
        tenant=image.tenant,
        actor=actor,
        target=image,
        message=f"-{tenant.name}",
        request=request,
    )


@transaction.atomic
def image_share_answer(*, image: Image, tenant: Tenant, status: str, actor=None, request=None) -> ImageShare:
    """The tenant an image is shared with accepts or rejects it (or goes back to pending)."""
    if status not in ImageShare.Status.values:
        raise ValidationError(
            _("Choose one of: %(statuses)s.") % {"statuses": ", ".join(ImageShare.Status.values)},
            code="share_status",
        )
    share = (
        ImageShare.objects.select_for_update()
        .select_related("image")
        .filter(image=image, tenant=tenant)
        .first()
    )
    if share is None:
        raise ValidationError(_("The image is not shared with this tenant."), code="not_shared")
    if share.status != status:
        share.status = status
        share.save(update_fields=["status", "updated_at"])
        log(
            action=f"image.share.{status}",
            tenant=tenant,
            actor=actor,
            target=share.image,
            message=f"{share.image.tenant.name} → {tenant.name}: {status}",
            request=request,
        )
    return share
