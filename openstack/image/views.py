"""The Image API v2: versions, images (list, create, show, JSON-patch update, delete), tags, actions."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from images.forms import ImageImportForm
from images.models import Image
from images.services import (
    ImageInUse,
    ImageProtected,
    TransitionNotAllowed,
    image_delete,
    image_import_create,
    image_set_enabled,
    image_set_metadata,
    image_update,
    import_cancel,
)
from storage.selectors import storage_choices_for_import

from ..http import ApiError, OpenStackView, json_response, read_json
from . import listing
from .access import own_image, visible_image
from .file import import_error
from .patch import apply_patch, check_value
from .serialize import (
    CORE,
    OUR_CONTAINER_FORMATS,
    OUR_DISK_FORMATS,
    READ_ONLY,
    image_body,
)
from .staging import is_staged
from .stores import STORE_HEADER, store_for

CURRENT = "v2.16"
# Versions Glance 33 lists; all are the same API here.
SUPPORTED = ["v2.15", "v2.14", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8", "v2.7", "v2.6", "v2.5",
             "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"]  # fmt: skip


def versions_body(request) -> dict:
    href = request.build_absolute_uri(reverse("openstack-image-versions")) + "v2/"
    return {
        "versions": [
            {"id": version, "status": "CURRENT" if version == CURRENT else "SUPPORTED",
             "links": [{"rel": "self", "href": href}]}
            for version in [CURRENT, *SUPPORTED]
        ]
    }  # fmt: skip


class VersionsView(OpenStackView):
    authenticated = False

    def get(self, request):
        # Glance answers its root with 300 Multiple Choices, and /versions with 200.
        return json_response(versions_body(request), status=200 if request.path.endswith("versions") else 300)


def shown(request, image: Image) -> dict:
    return image_body(image, tenant=request.tenant, staged=is_staged(image))


def _create_fields(request, body: dict) -> tuple[dict, dict]:
    """The import form's data from a Glance create body, and the OpenStack metadata to set after."""
    for key in ("name", "tags"):
        if body.get(key) is not None:
            check_value(key, body[key])
    disk_format = body.get("disk_format") or "qcow2"
    container = body.get("container_format") or "bare"
    if disk_format not in OUR_DISK_FORMATS:
        raise ApiError(400, _("disk_format %(format)s is not supported here; use one of: %(formats)s.")
                       % {"format": disk_format, "formats": ", ".join(OUR_DISK_FORMATS)})  # fmt: skip
    if container not in OUR_CONTAINER_FORMATS:
        raise ApiError(400, _("container_format %(format)s is not supported here; use one of: %(formats)s.")
                       % {"format": container, "formats": ", ".join(OUR_CONTAINER_FORMATS)})  # fmt: skip
    source_format = "ova" if container == "ova" else disk_format
    properties = {key: value for key, value in body.items() if key not in CORE}
    architecture = properties.get("architecture") or properties.get("hw_architecture") or "x86_64"
    if architecture not in Image.Architecture.values:
        architecture = "x86_64"
    os_type = properties.get("os_type") if properties.get("os_type") in Image.OSType.values else "other"
    iso = source_format == "iso"
    data = {
        "name": body.get("name") or "image",
        "kind": Image.Kind.ISO if iso else Image.Kind.SYSTEM,
        "disk_format": source_format,
        "import_method": "upload",
        "os_type": os_type,
        "architecture": architecture,
        "boot_mode": "uefi"
        if architecture in ("aarch64", "mips64el") or properties.get("hw_firmware_type") == "uefi"
        else "bios",
        "virtio": True,
        "labels": body.get("tags") or [],
        "storage": store_for(request, request.headers.get(STORE_HEADER, "")).pk,
    }
    if body.get("id"):
        raise ApiError(400, _("Choosing an image's id is not supported; leave id out."))
    metadata = {
        "protected": body.get("protected"),
        "min_disk": body.get("min_disk"),
        "min_ram": body.get("min_ram"),
        "properties": properties or None,
    }
    return data, metadata


class ImagesView(OpenStackView):
    def get(self, request):
        return json_response(listing.image_list(request))

    def post(self, request):
        self.require_manage(request)
        body = read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, _("Send a JSON object."))
        for key in READ_ONLY & body.keys() - {"id"}:
            raise ApiError(403, _("Attribute '%(key)s' is read-only.") % {"key": key})
        data, metadata = _create_fields(request, body)
        form = ImageImportForm(
            data,
            tenant=request.tenant,
            membership=request.membership,
            user=request.user,
            iso=data["kind"] == "iso",
        )
        if not form.is_valid():
            raise ApiError(
                400, " ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
            )
        try:
            with transaction.atomic():
                image = image_import_create(
                    tenant=request.tenant, fields=form.image_fields(), actor=request.user, request=request
                )
                image = image_set_metadata(image=image, actor=request.user, request=request, **metadata)
                if body.get("visibility") not in (None, "private"):
                    from .members import set_visibility

                    image = set_visibility(request, image, body["visibility"])
        except ValidationError as error:
            raise import_error(error) from error
        image = Image.objects.select_related("storage").get(pk=image.pk)
        from .interop import METHODS

        stores = ",".join(str(s.pk) for s in storage_choices_for_import(tenant=request.tenant))
        headers = {
            "Location": f"/v2/images/{image.pk}",
            "OpenStack-image-import-methods": ",".join(METHODS),
            "OpenStack-image-store-ids": stores,
        }
        return json_response(shown(request, image), status=201, headers=headers)


class ImageView(OpenStackView):
    def get(self, request, image_id):
        return json_response(shown(request, visible_image(request, image_id)))

    def patch(self, request, image_id):
        image = own_image(request, image_id)
        content_type = request.content_type or ""
        if content_type not in (
            "application/openstack-images-v2.1-json-patch",
            "application/openstack-images-v2.0-json-patch",
        ):
            raise ApiError(415, _("Send application/openstack-images-v2.1-json-patch."))
        operations = read_json(request)
        image = apply_patch(request, image, operations)
        return json_response(shown(request, image))

    def delete(self, request, image_id):
        image = own_image(request, image_id)
        if image.protected:
            raise ApiError(403, _("Image %(id)s is protected and cannot be deleted.") % {"id": image.pk})
        try:
            with transaction.atomic():
                if image.status == Image.Status.UPLOADING:
                    image = import_cancel(image=image, actor=request.user, request=request)
                image_delete(image=image, actor=request.user, request=request)
        except ImageProtected as error:
            raise ApiError(403, " ".join(error.messages)) from error
        except ImageInUse as error:
            raise ApiError(409, " ".join(error.messages)) from error
        except TransitionNotAllowed as error:
            raise ApiError(409, str(error)) from error
        return HttpResponse(status=204)


class TagView(OpenStackView):
    def put(self, request, image_id, tag):
        image = own_image(request, image_id)
        if tag not in image.labels:
            image_update(image=image, labels=[*image.labels, tag], actor=request.user, request=request)
        return HttpResponse(status=204)

    def delete(self, request, image_id, tag):
        image = own_image(request, image_id)
        if tag not in image.labels:
            raise ApiError(404, _("Tag %(tag)s not found.") % {"tag": tag})
        image_update(
            image=image, labels=[t for t in image.labels if t != tag], actor=request.user, request=request
        )
        return HttpResponse(status=204)


class ActionView(OpenStackView):
    """`POST .../actions/deactivate` and `.../actions/reactivate`: our disable and enable."""

    action = "deactivate"

    def post(self, request, image_id):
        image = own_image(request, image_id)
        if image.status != Image.Status.AVAILABLE:
            raise ApiError(403, _("Not allowed to %(action)s an image in status %(status)s.")
                           % {"action": self.action, "status": shown(request, image)["status"]})  # fmt: skip
        image_set_enabled(
            image=image, enabled=self.action == "reactivate", actor=request.user, request=request
        )
        return HttpResponse(status=204)
