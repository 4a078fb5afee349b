"""JSON-patch updates (`application/openstack-images-v2.1-json-patch`) as calls to the images services."""

from django.db import transaction
from django.utils.translation import gettext as _

from images.models import Image
from images.services import image_set_metadata, image_update

from ..http import ApiError
from .serialize import CORE, READ_ONLY, container_format

CHANGEABLE = {"name", "visibility", "protected", "tags", "min_disk", "min_ram"}
FORMATS = {"disk_format", "container_format"}


def _path(operation) -> str:
    path = operation.get("path")
    if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1 or len(path) < 2:
        raise ApiError(400, _("Invalid JSON pointer for this resource: '%(path)s'.") % {"path": path})
    return path[1:].replace("~1", "/").replace("~0", "~")


def check_value(key: str, value) -> None:
    """Glance's schema types for the attributes the console keeps in its own fields (a 400, not a 500)."""
    if key == "name" and not isinstance(value, str):
        raise ApiError(400, _("name must be a string."))
    if key == "tags" and not (isinstance(value, list) and all(isinstance(tag, str) for tag in value)):
        raise ApiError(400, _("tags must be a list of strings."))
    if key == "visibility" and not isinstance(value, str):
        raise ApiError(400, _("Invalid visibility value: %(value)s") % {"value": value})


def apply_patch(request, image: Image, operations) -> Image:
    if not isinstance(operations, list):
        raise ApiError(400, _("Send a list of JSON-patch operations."))
    state = {
        "name": image.name,
        "tags": list(image.labels or []),
        "protected": image.protected,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "visibility": None,
    }
    properties = dict(image.properties or {})
    for operation in operations:
        if not isinstance(operation, dict) or operation.get("op") not in ("add", "replace", "remove"):
            raise ApiError(400, _("Each operation needs op add, replace or remove, and a path."))
        op, key = operation["op"], _path(operation)
        if op != "remove" and "value" not in operation:
            raise ApiError(400, _("Operation %(op)s on %(key)s needs a value.") % {"op": op, "key": key})
        value = operation.get("value")
        if key in READ_ONLY or key == "os_hidden":
            raise ApiError(403, _("Attribute '%(key)s' is read-only.") % {"key": key})
        if key in FORMATS:
            current = image.disk_format if key == "disk_format" else container_format(image)
            if op == "remove" or value != current:
                raise ApiError(
                    403,
                    _("Attribute '%(key)s' cannot change: the import was planned for it. Create the image "
                      "again with the format wanted.") % {"key": key},
                )  # fmt: skip
            continue
        if key in CHANGEABLE:
            if op == "remove":
                raise ApiError(403, _("Attribute '%(key)s' cannot be removed.") % {"key": key})
            check_value(key, value)
            state[key] = value
            continue
        if key in CORE:
            raise ApiError(403, _("Attribute '%(key)s' is read-only.") % {"key": key})
        if op == "remove":
            if key not in properties:
                raise ApiError(409, _("Property %(key)s does not exist.") % {"key": key})
            del properties[key]
        elif op == "replace" and key not in properties:
            raise ApiError(409, _("Property %(key)s does not exist.") % {"key": key})
        else:
            properties[key] = value
    with transaction.atomic():
        image = image_update(
            image=image, name=state["name"], labels=state["tags"], actor=request.user, request=request
        )
        image = image_set_metadata(
            image=image,
            protected=state["protected"],
            min_disk=state["min_disk"],
            min_ram=state["min_ram"],
            properties=properties,
            actor=request.user,
            request=request,
        )
        if state["visibility"] is not None:
            from .members import set_visibility

            image = set_visibility(request, image, state["visibility"])
    return Image.objects.select_related("storage").get(pk=image.pk)
