"""Which images a caller reaches: the images app's tenant-scoped selectors, nothing else."""

from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils.translation import gettext as _

from images import selectors
from images.models import Image

from ..http import ApiError


def visible_images(request):
    return selectors.images_visible(tenant=request.tenant, membership=request.membership)


def visible_image(request, image_id) -> Image:
    return selectors.image_get(tenant=request.tenant, membership=request.membership, pk=image_id)


def own_image(request, image_id, *, manage: bool = True) -> Image:
    """One of the tenant's own images that the caller may change. Another tenant's image is a 404; an
    image shared with this tenant, or a view-only caller, is a 403."""
    image = visible_image(request, image_id)
    if image.tenant_id != request.tenant.pk:
        raise ApiError(403, _("This image is shared with your tenant by another one and is read-only here."))
    try:
        image = (
            selectors.images_owned(tenant=request.tenant, membership=request.membership)
            .select_related("storage", "tenant")
            .get(pk=image.pk)
        )
    except (Image.DoesNotExist, ValidationError) as error:
        raise Http404(_("No such image.")) from error
    if manage and not request.caller.can_manage:
        raise ApiError(403, _("Your account may view this tenant's images but not change them."))
    return image
