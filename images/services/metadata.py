"""An image's OpenStack-style metadata: protected, minimum disk and memory, free-form properties.

Kept on the image (the console shows them) and changed by the OpenStack Image API and the console alike.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from tenants.services import log

from ..models import Image

PROPERTY_KEY_MAX = 255
PROPERTY_VALUE_MAX = 65535
PROPERTIES_MAX = 128


def clean_properties(properties: dict) -> dict:
    if not isinstance(properties, dict):
        raise ValidationError({"properties": _("Properties must be an object of names and values.")})
    if len(properties) > PROPERTIES_MAX:
        raise ValidationError(
            {"properties": _("An image can have at most %(max)d properties.") % {"max": PROPERTIES_MAX}}
        )
    cleaned = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not key or len(key) > PROPERTY_KEY_MAX:
            raise ValidationError(
                {"properties": _("A property name has 1 to %(max)d characters.") % {"max": PROPERTY_KEY_MAX}}
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValidationError(
                {"properties": _("The property “%(key)s” must be a string.") % {"key": key[:40]}}
            )
        if isinstance(value, str) and len(value) > PROPERTY_VALUE_MAX:
            raise ValidationError(
                {"properties": _("The property “%(key)s” is too long.") % {"key": key[:40]}}
            )
        cleaned[key] = value
    return cleaned


@transaction.atomic
def image_set_metadata(
    *,
    image: Image,
    protected: bool | None = None,
    min_disk: int | None = None,
    min_ram: int | None = None,
    properties: dict | None = None,
    actor=None,
    request=None,
) -> Image:
    """Change what is given (None leaves a value as it is); `properties` replaces the whole set."""
    image = Image.objects.select_for_update().get(pk=image.pk)
    changes = {}
    for name, value in (("min_disk", min_disk), ("min_ram", min_ram)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31 - 1:
            raise ValidationError({name: _("Give a whole number of 0 or more.")})
        changes[name] = value
    if protected is not None:
        if not isinstance(protected, bool):
            raise ValidationError({"protected": _("Give true or false.")})
        changes["protected"] = protected
    if properties is not None:
        changes["properties"] = clean_properties(properties)
    changes = {name: value for name, value in changes.items() if getattr(image, name) != value}
    if not changes:
        return image
    before = {name: getattr(image, name) for name in changes}
    for name, value in changes.items():
        setattr(image, name, value)
    image.save(update_fields=[*changes, "updated_at"])
    log(
        action="image.update",
        tenant=image.tenant,
        actor=actor,
        target=image,
        message="; ".join(f"{name}: {before[name]!r} → {value!r}" for name, value in changes.items()),
        request=request,
    )
    return image
