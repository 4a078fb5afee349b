"""Visibility and members: our sharing modes (not shared, chosen tenants, global) as Glance's."""

from django.utils.translation import gettext as _

from images.models import Image
from images.services import image_set_sharing

from ..http import ApiError


def set_visibility(request, image: Image, visibility) -> Image:
    if visibility == "private":
        return image_set_sharing(image=image, sharing=Image.Sharing.PRIVATE, actor=request.user, request=request)
    if visibility == "public":
        if not request.user.is_staff:
            raise ApiError(403, _("Only a platform administrator can make an image public (shared globally)."))
        return image_set_sharing(image=image, sharing=Image.Sharing.GLOBAL, actor=request.user, request=request)
    if visibility == "shared":
        # Shared with the members added through /members; until there is one the image stays private.
        return image
    if visibility == "community":
        raise ApiError(400, _("Community images are not supported here; use shared with members, or public."))
    raise ApiError(400, _("Invalid visibility value: %(value)s") % {"value": visibility})


def offered_images(request, *, status: str):
    return Image.objects.none()
