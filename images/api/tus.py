"""The tus 1.0 resumable-upload endpoint: core, creation, termination and expiration.

    OPTIONS /api/v1/uploads/          what the server supports
    POST    /api/v1/uploads/          creation: Upload-Length, Upload-Metadata "image_id <base64>,filename <base64>"
    HEAD    /api/v1/uploads/<id>      Upload-Offset: where to continue
    PATCH   /api/v1/uploads/<id>      append (Content-Type: application/offset+octet-stream, Upload-Offset)
    DELETE  /api/v1/uploads/<id>      termination: cancels the import

The upload resource is the image's UploadSession. The length is checked against the tenant's quota and
the free space at creation, before any byte. A PATCH streams the body into an ImportReceiver; when the
connection drops, what arrived is kept and HEAD says from where to continue.
"""

import base64
import binascii
from email.utils import format_datetime

from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from imageconsole.core.request_body import body_reader
from tenants.api_base import TenantAPIView, require_manage_api

from .. import conf, selectors
from ..models import Image, UploadSession
from ..services import import_cancel, upload_begin
from ..services.receiving import ImportReceiver, receive_body
from ..services.transitions import TransitionNotAllowed
from .errors import HANDLED, error_response
from .views import RawBodyParser

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
PATCH_CONTENT_TYPE = "application/offset+octet-stream"


def max_size() -> int:
    # Compressed or sparse formats aside, no file is much larger than its virtual size.
    return conf.max_virtual_size() + conf.GiB


def parse_metadata(header: str) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs."""
    metadata = {}
    for pair in filter(None, (item.strip() for item in header.split(","))):
        key, _sep, encoded = pair.partition(" ")
        try:
            metadata[key] = (
                base64.b64decode(encoded.strip(), validate=True).decode("utf-8") if encoded else ""
            )
        except (binascii.Error, UnicodeDecodeError, ValueError) as error:
            raise ValueError(key) from error
    return metadata


class TusView(TenantAPIView):
    parser_classes = [RawBodyParser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.tus_error = None
        if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
            self.tus_error = Response(
                {"detail": _("Send the header Tus-Resumable: %(version)s.") % {"version": TUS_VERSION}},
                status=412,
                headers={"Tus-Version": TUS_VERSION},
            )

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Tus-Resumable"] = TUS_VERSION
        response["Cache-Control"] = "no-store"
        return response

    def session_or_404(self, request, pk) -> UploadSession:
        session = selectors.upload_session_owned(pk=pk, tenant=request.tenant, membership=request.membership)
        if session is None:
            raise Http404(_("No such upload."))
        return session

    @staticmethod
    def expires(session: UploadSession) -> dict:
        return (
            {"Upload-Expires": format_datetime(session.expires_at, usegmt=True)} if session.expires_at else {}
        )


class UploadCollectionView(TusView):
    @extend_schema(exclude=True)
    def options(self, request, *args, **kwargs):
        return Response(
            status=204,
            headers={
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(max_size()),
            },
        )

    @extend_schema(
        summary="tus creation: start the upload of an image created with source=upload",
        description="Headers: Tus-Resumable: 1.0.0, Upload-Length, Upload-Metadata with image_id.",
        request=None,
        responses={
            201: OpenApiResponse(description="Created; Location names the upload"),
            404: OpenApiResponse(description="No such image"),
            413: OpenApiResponse(description="Over the quota, the free space or the maximum size"),
        },
    )
    def post(self, request):
        if self.tus_error is not None:
            return self.tus_error
        if request.headers.get("Upload-Defer-Length"):
            return Response({"detail": _("Announce the upload's length (Upload-Length).")}, status=400)
        try:
            length = int(request.headers.get("Upload-Length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            return Response({"detail": _("Send the upload's length in Upload-Length.")}, status=400)
        if length > max_size():
            return Response(
                {"detail": _("The file is larger than any image this console accepts.")}, status=413
            )
        try:
            metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
        except ValueError:
            return Response({"detail": _("Upload-Metadata is not valid (key base64,...).")}, status=400)
        image_id = metadata.get("image_id", "")
        try:
            image = selectors.images_owned(tenant=request.tenant, membership=request.membership).get(
                pk=image_id
            )
        except (Image.DoesNotExist, ValueError, ValidationError):
            return Response(
                {"detail": _("Upload-Metadata must name the image_id of an image of yours being imported.")},
                status=404,
            )
        require_manage_api(request)
        filename = metadata.get("filename") or metadata.get("name") or ""
        try:
            session = upload_begin(image_id=image.pk, length=length, filename=filename)
        except HANDLED as error:
            return error_response(error)
        location = request.build_absolute_uri(reverse("api-upload", args=[session.pk]))
        return Response(status=201, headers={"Location": location, **self.expires(session)})


class UploadView(TusView):
    @extend_schema(exclude=True)
    def options(self, request, *args, **kwargs):
        return Response(status=204, headers={"Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS})

    @extend_schema(
        summary="tus: the upload's offset (where to continue)",
        responses={
            200: OpenApiResponse(description="Upload-Offset and Upload-Length headers (equal: complete)"),
            404: None,
            410: OpenApiResponse(description="The import was cancelled or failed"),
        },
    )
    def head(self, request, pk):
        if self.tus_error is not None:
            return self.tus_error
        session = self.session_or_404(request, pk)
        complete = session.image.status == Image.Status.AVAILABLE and session.offset == session.length
        if session.image.status != Image.Status.UPLOADING and not complete:
            return Response(status=410)
        # A complete upload (its last PATCH made the image available) says so, as tus asks: a client
        # resuming it from a stored URL finds the offset at the length, and is done.
        headers = {"Upload-Offset": str(session.offset), **self.expires(session)}
        if session.length is not None:
            headers["Upload-Length"] = str(session.length)
        return Response(status=200, headers=headers)

    @extend_schema(
        summary="tus: append bytes at Upload-Offset",
        request={PATCH_CONTENT_TYPE: OpenApiTypes.BINARY},
        responses={
            204: OpenApiResponse(description="Upload-Offset: the new offset"),
            409: OpenApiResponse(description="Upload-Offset is not the upload's offset"),
            410: OpenApiResponse(description="The import was cancelled or failed"),
            422: OpenApiResponse(description="The file was refused (format, safety, SHA256)"),
            423: OpenApiResponse(description="Another request is sending this upload's bytes"),
        },
    )
    def patch(self, request, pk):
        if self.tus_error is not None:
            return self.tus_error
        session = self.session_or_404(request, pk)
        require_manage_api(request)
        if request.content_type != PATCH_CONTENT_TYPE:
            return Response(
                {"detail": _("Send the bytes as %(type)s.") % {"type": PATCH_CONTENT_TYPE}}, status=415
            )
        try:
            offset = int(request.headers.get("Upload-Offset", ""))
            nbytes = int(request.META.get("CONTENT_LENGTH") or "")
            if offset < 0 or nbytes < 0:
                raise ValueError
        except ValueError:
            return Response({"detail": _("Send Upload-Offset and Content-Length.")}, status=400)
        if session.length is not None and offset + nbytes > session.length:
            return Response({"detail": _("More bytes than the upload's length.")}, status=413)
        try:
            receiver = ImportReceiver(image_id=session.image_id, offset=offset, finish_in_request=True)
            new_offset = receive_body(receiver, body_reader(request), nbytes=nbytes)
        except HANDLED as error:
            return error_response(error)
        session.expires_at = receiver.session.expires_at  # as this request's commit set it
        return Response(status=204, headers={"Upload-Offset": str(new_offset), **self.expires(session)})

    @extend_schema(summary="tus termination: cancel the import", responses={204: None, 404: None})
    def delete(self, request, pk):
        if self.tus_error is not None:
            return self.tus_error
        session = self.session_or_404(request, pk)
        require_manage_api(request)
        try:
            import_cancel(image=session.image, actor=request.user, request=request._request)
        except TransitionNotAllowed:
            pass  # already ended: nothing left to terminate
        return Response(status=204)
