"""`POST /api/v1/images/`, `GET /api/v1/images/<id>/`, `PUT /api/v1/images/<id>/file`,
`POST /api/v1/images/<id>/cancel`. The list's engineer adds list, update and delete to ImageViewSet."""

from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from imageconsole.core.request_body import body_reader
from storage.selectors import storage_choices_for_import
from tenants.api_base import TenantAPIView, require_manage_api

from .. import selectors
from ..forms import ImageImportForm
from ..models import Image, UploadSession
from ..services import image_import_create, import_cancel
from ..services.receiving import ImportReceiver, receive_body, upload_restart
from ..services.transitions import TransitionNotAllowed
from . import lifecycle
from .errors import HANDLED, error_response
from .serializers import ImageCreateSerializer, ImportedImageSerializer

# API field -> the wizard form's field.
FORM_NAMES = {"source": "import_method", "size": "file_size"}
API_NAMES = {form: api for api, form in FORM_NAMES.items()}
BOOLEAN_FIELDS = ("csm", "virtio", "cloud_init", "qemu_ga", "hot_upgrade")


def owned_image(request, pk) -> Image:
    """One of the tenant's own images (never another tenant's: a 404)."""
    try:
        return (
            selectors.images_owned(tenant=request.tenant, membership=request.membership)
            .select_related("upload", "storage")
            .get(pk=pk)
        )
    except (Image.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404(_("No such image.")) from error


def _form_data(data) -> dict:
    values = {}
    for key, value in data.items():
        if hasattr(data, "getlist") and key == "labels":
            value = data.getlist(key)
        values[FORM_NAMES.get(key, key)] = value
    values.setdefault("virtio", True)
    # Defaults for a script that gives only what matters to it (the wizard always sends them).
    values.setdefault(
        "kind", Image.Kind.ISO if values.get("disk_format") == Image.DiskFormat.ISO else Image.Kind.SYSTEM
    )
    values.setdefault("import_method", "upload")
    values.setdefault("os_type", Image.OSType.OTHER)
    values.setdefault("architecture", Image.Architecture.X86_64)
    uefi_only = values.get("architecture") in ("aarch64", "mips64el")
    values.setdefault("boot_mode", Image.BootMode.UEFI if uefi_only else Image.BootMode.BIOS)
    return values


class ImageImportMixin:
    """create (POST /api/v1/images/) and cancel (POST /api/v1/images/<id>/cancel) for the image viewset."""

    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        summary="Import an image: create it, then send its bytes (PUT .../file or tus), or give a URL",
        request=ImageCreateSerializer,
        responses={
            201: ImportedImageSerializer,
            400: OpenApiResponse(description="Fields and what is wrong with them"),
        },
    )
    def create(self, request):
        require_manage_api(request)
        if not isinstance(request.data, dict):
            return Response({"detail": _("Send a JSON object.")}, status=400)
        data = _form_data(request.data)
        iso = data.get("kind") == Image.Kind.ISO
        if iso and data.get("disk_format", Image.DiskFormat.ISO) != Image.DiskFormat.ISO:
            return Response({"disk_format": [_("An ISO image's format is iso.")]}, status=400)
        if not data.get("storage"):
            first = storage_choices_for_import(tenant=request.tenant).first()
            data["storage"] = first.pk if first else ""
        form = ImageImportForm(
            data, tenant=request.tenant, membership=request.membership, user=request.user, iso=iso
        )
        if not form.is_valid():
            errors = {
                API_NAMES.get(field, field): [str(e) for e in errs] for field, errs in form.errors.items()
            }
            return Response(errors, status=400)
        try:
            image = image_import_create(
                tenant=request.tenant,
                fields=form.image_fields(),
                actor=request.user,
                request=request._request,
                upload_length=form.cleaned_data.get("file_size"),
                url=form.cleaned_data.get("url", ""),
            )
        except HANDLED as error:
            return error_response(error)
        return Response(self.imported(image), status=201)

    @extend_schema(
        summary="Cancel an import (any stage); the image fails and what it received is removed",
        request=None,
        responses={
            200: ImportedImageSerializer,
            409: OpenApiResponse(description="The image is not importing"),
        },
    )
    def cancel(self, request, pk=None):
        image = owned_image(request, pk)
        require_manage_api(request)
        try:
            image = import_cancel(image=image, actor=request.user, request=request._request)
        except TransitionNotAllowed as error:
            return Response({"detail": str(error)}, status=409)
        return Response(self.imported(image))

    def imported(self, image: Image) -> dict:
        image = Image.objects.select_related("upload", "project_group", "storage").get(pk=image.pk)
        return ImportedImageSerializer(image, context={"request": self.request}).data


class ImageViewSet(ImageImportMixin, lifecycle.ImageViewSet):
    """Images: list, create (import), detail, edit, delete, cancel, and the Excel export."""


class RawBodyParser(BaseParser):
    """Declares the body types PUT accepts; the view streams the body itself and never parses it."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # pragma: no cover - never called
        return stream


class ImageFileAPIView(TenantAPIView):
    parser_classes = [RawBodyParser]

    @extend_schema(
        summary="Send an upload image's bytes in one streamed request (Content-Length required); 202",
        description=(
            "`curl -T disk.qcow2 -H 'Authorization: Token KEY' https://HOST/api/v1/images/ID/file`. "
            "A PUT replaces whatever an earlier upload of this image received. A body that ends early "
            "keeps what arrived (400 with `offset` and `tus_url`): continue with tus PATCHes from there. "
            "The answer shows the image as the upload left it: an image stored as it arrived (qcow2, raw, "
            "ISO) is already `available` (a file refused after its last byte is a 422, as one refused "
            "while it arrived); one to convert or decompress is `inspecting` while its job runs."
        ),
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("Content-Length", int, OpenApiParameter.HEADER, required=True)],
        responses={
            202: ImportedImageSerializer,
            411: OpenApiResponse(description="No Content-Length"),
            413: OpenApiResponse(description="Over the quota, the free space or the target size"),
            422: OpenApiResponse(description="The file was refused (format, safety, SHA256)"),
        },
    )
    def put(self, request, pk):
        image = owned_image(request, pk)
        require_manage_api(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or "")
        except ValueError:
            return Response({"detail": _("Send the file with a Content-Length header.")}, status=411)
        if length < 0:
            return Response({"detail": _("Send the file with a Content-Length header.")}, status=411)
        try:
            upload_restart(image_id=image.pk, length=length, filename="")
            receiver = ImportReceiver(image_id=image.pk, offset=0, finish_in_request=True)
            received = receive_body(receiver, body_reader(request), nbytes=length)
        except HANDLED as error:
            return error_response(error)
        if received < length:
            # What arrived is kept (with its receive state, as after a tus PATCH): the client continues
            # the upload with tus from this offset, or sends the whole file again with a new PUT.
            session = UploadSession.objects.get(image_id=image.pk)
            tus_url = request.build_absolute_uri(reverse("api-upload", args=[session.pk]))
            return Response(
                {
                    "detail": _(
                        "The body ended after %(received)d of %(length)d bytes. They are kept: continue "
                        "with tus (PATCH %(url)s with Upload-Offset: %(received)d and the rest of the "
                        "file), or send the whole file again with PUT."
                    )
                    % {"received": received, "length": length, "url": tus_url},
                    "offset": received,
                    "tus_url": tus_url,
                },
                status=400,
                headers={"Location": tus_url, "Upload-Offset": str(received)},
            )
        image = Image.objects.select_related("upload", "project_group", "storage").get(pk=image.pk)
        return Response(ImportedImageSerializer(image, context={"request": request}).data, status=202)
