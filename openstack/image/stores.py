"""Which image storage (Glance's store) an image goes to: the one `X-Image-Meta-Store` or `stores` names
among those open to imports, else the first of them. glanceclient and openstacksdk name it when they
send the data (`PUT .../file`, `POST .../import`), so a queued image may still move."""

from django.utils.translation import gettext as _

from images.services import ImportNotAccepted, import_storage_set
from storage.selectors import storage_choices_for_import

from ..http import ApiError

STORE_HEADER = "X-Image-Meta-Store"


def store_for(request, wanted: str = ""):
    storages = storage_choices_for_import(tenant=request.tenant)
    if wanted:
        storage = (
            storages.filter(pk=int(wanted)).first()
            if wanted.isdigit()
            else storages.filter(name=wanted).first()
        )
        if storage is None:
            raise ApiError(
                400,
                _("No image storage “%(store)s” is open to imports (see GET /v2/info/stores).")
                % {"store": wanted},
            )
        return storage
    storage = storages.first()
    if storage is None:
        raise ApiError(503, _("No image storage is open to imports; ask an administrator to add one."))
    return storage


def store_chosen(request, image, wanted: str = ""):
    """The image, moved to the store `wanted` names if that is another one (before its data arrives)."""
    if not wanted:
        return image
    storage = store_for(request, wanted)
    try:
        return import_storage_set(image=image, storage=storage, actor=request.user, request=request)
    except ImportNotAccepted as error:
        raise ApiError(409, error.message) from error
