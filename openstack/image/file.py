"""`PUT /v2/images/{id}/file` through the import pipeline, `GET` with Content-MD5 and HTTP ranges (the
images app's Range module, `images.downloads.ranges`, the same as the console's download links).
"""

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from imageconsole.core.request_body import body_reader
from images.downloads.ranges import ranged_response
from images.inspection import ImportRefused
from images.models import Image, UploadSession
from images.services.fetching import fetch_limit
from images.services.imports import ImportNotAccepted
from images.services.receiving import BLOCK_SIZE, ImportReceiver, receive_body, upload_restart
from storage.backends import StorageError, get_backend

from ..http import ApiError, OpenStackView
from .access import own_image, visible_image
from .stores import STORE_HEADER, store_chosen


def import_error(error) -> ApiError:
    """The import pipeline's refusals as Image API errors."""
    if isinstance(error, ImportRefused):
        return ApiError(400, error.message)
    if isinstance(error, ImportNotAccepted):
        return ApiError(409 if error.status in (409, 410) else error.status, error.message)
    if isinstance(error, ValidationError):
        code = getattr(error, "code", None)
        message = " ".join(str(m) for m in error.messages)
        return ApiError(
            413 if code in {"quota_bytes", "storage_full", "staging_full", "too_large"} else 400, message
        )
    raise error


def accepts_bytes(image: Image) -> bool:
    return (
        image.status == Image.Status.UPLOADING
        and image.source == Image.Source.UPLOAD
        and image.stage in (Image.Stage.QUEUED, Image.Stage.RECEIVING)
    )


def chunked_reader(request):
    """A request body without Content-Length (chunked): the server decodes it; read wsgi.input itself,
    which Django would treat as empty."""
    stream = request.META["wsgi.input"]
    return stream.read


def store_body(request, image: Image) -> None:
    """Send the request's body to the image's import: the same receiver as `PUT /api/v1/images/<id>/file`."""
    length_header = request.META.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    try:
        if length_header and not chunked:
            try:
                length = int(length_header)
            except ValueError as error:
                raise ApiError(400, _("Content-Length is not a number.")) from error
            upload_restart(image_id=image.pk, length=length, filename="")
            received = receive_body(
                ImportReceiver(image_id=image.pk, offset=0, finish_in_request=True),
                body_reader(request),
                nbytes=length,
            )
            if received < length:
                raise ApiError(
                    400,
                    _("The body ended after %(received)d of %(length)d bytes; send the file again.")
                    % {"received": received, "length": length},
                )
            return
        # No length announced (glanceclient sends chunked): stored as it arrives, cut off where the
        # tenant's quota or the storage's free space would be passed (as a URL fetch without a length).
        UploadSession.objects.filter(image=image, offset=0).update(length=None)
        limit = fetch_limit(image)
        read = chunked_reader(request) if chunked else request.read
        receiver = ImportReceiver(image_id=image.pk, offset=0, unknown_length=True, finish_in_request=True)
        with receiver:
            received = 0
            while data := read(BLOCK_SIZE):
                received += len(data)
                if limit is not None and received > limit:
                    receiver.refuse(
                        ImportRefused(
                            _(
                                "The file is larger than the %(limit)s the tenant's quota and the storage's free space allow."
                            )
                            % {"limit": filesizeformat(limit)},
                            code="too_large",
                        )
                    )
                    raise ApiError(413, Image.objects.get(pk=image.pk).error)
                receiver.write(data)
            receiver.finish()
    except (ImportRefused, ImportNotAccepted, ValidationError) as error:
        raise import_error(error) from error


class ImageFileView(OpenStackView):
    def put(self, request, image_id):
        image = own_image(request, image_id)
        if image.status == Image.Status.AVAILABLE or not accepts_bytes(image):
            raise ApiError(
                409,
                _("The image's data can be sent only once, while it is queued (it is %(status)s).")
                % {"status": image.get_status_display()},
            )
        image = store_chosen(request, image, request.headers.get(STORE_HEADER, ""))
        store_body(request, image)
        return HttpResponse(status=204)

    def get(self, request, image_id):
        image = visible_image(request, image_id)
        if image.status != Image.Status.AVAILABLE:
            return HttpResponse(status=204)
        if not image.enabled and not request.user.is_staff:
            raise ApiError(403, _("The image is deactivated; its data cannot be downloaded."))
        replica = image.replicas.filter(state="ready").select_related("storage").order_by("pk").first()
        if replica is None:
            raise ApiError(503, _("No ready copy of the image's data is stored; ask an administrator."))
        backend = get_backend(replica.storage)
        try:
            size = backend.size(replica.key)
        except StorageError as error:
            raise ApiError(503, str(error)) from error
        # Range, If-Range, 206/416 and multipart/byteranges as on the console's download links.
        return ranged_response(
            request,
            size=size,
            etag=None,
            last_modified=None,
            read=lambda start, stop: backend.read_range(replica.key, start, stop),
            extra_headers={"Content-MD5": image.md5} if image.md5 else None,
        )
