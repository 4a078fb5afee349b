from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils.translation import gettext as _

from ..models import Image
from ..selectors import images_owned


def owned_or_404(request, pk) -> Image:
    """One of the tenant's own images this membership may act on; anything else is a 404."""
    try:
        return (
            images_owned(tenant=request.tenant, membership=request.membership)
            .select_related("upload", "storage", "project_group")
            .get(pk=pk)
        )
    except (Image.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404(_("No such image.")) from error
