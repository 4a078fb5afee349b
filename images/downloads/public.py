"""`GET`/`HEAD /d/<token>/<file name>`: a download link, without a login (the token is the credential).

A standalone storage's image is streamed from its chunks (ranges.py, reading ahead at the storage's
download concurrency); an export on a standalone storage is a file, served by FileResponse so the WSGI
server may use sendfile; on a distributed storage both redirect to a presigned URL, signed for the
request's method (GET or HEAD), that expires no later than the link, except a request for several ranges
or for none within the file, which is answered here as on a standalone storage.
"""

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from storage.backends import ReplicaNotFound, get_backend

from ..models import DownloadLink
from .ranges import RangeNotSatisfiable, if_range_allows, parse_range, ranged_response
from .services import LinkGone, link_resolve, link_seconds_left, log_download, ready_replica


def _quoted(value: str) -> str:
    return f'"{value}"' if value else ""


def _gone(request, *, status: int, title: str, message: str):
    response = render(
        request, "images/downloads/link_error.html", {"title": title, "message": message}, status=status
    )
    response["Cache-Control"] = "no-store"
    return response


def _answered_here(request, *, size: int, etag: str, last_modified) -> bool:
    """Whether a request that an object store could answer (by redirect) is answered here instead:
    several ranges, or none within the file. S3 sends the whole file for several ranges and its 416
    carries no `Content-Range`; answered here, both kinds of storage answer such requests alike. The
    few bytes asked are read through the backend."""
    header = request.headers.get("Range")
    if not header or not if_range_allows(request, etag=etag, last_modified=last_modified):
        return False
    try:
        ranges = parse_range(header, size)
    except RangeNotSatisfiable:
        return True
    return ranges is not None and len(ranges) > 1


@require_http_methods(["GET", "HEAD"])
def download_file(request, token: str, filename: str):
    try:
        link = link_resolve(token, filename)
    except DownloadLink.DoesNotExist:
        return _gone(
            request,
            status=404,
            title=_("No such download link"),
            message=_(
                "This address is not a download link of this console: check that it was copied whole, "
                "or create a new link in the console."
            ),
        )
    except LinkGone as gone:
        return _gone(request, status=410, title=_("This download link no longer works"), message=gone.message)

    range_text = request.headers.get("Range") or _("whole file")
    if link.export_id is not None:
        export = link.export
        backend = get_backend(export.storage)
        key = export.key
        size, etag, last_modified = export.size, _quoted(export.sha256), export.finished_at
        url = backend.export_url(
            key, expires_in=link_seconds_left(link), filename=link.filename, method=request.method
        )
        path = backend.export_path(key) if url is None else None
        if url is None:
            try:
                size = backend.export_size(key)
            except ReplicaNotFound:
                return _gone(
                    request,
                    status=410,
                    title=_("This download link no longer works"),
                    message=_("The exported file of this link was deleted."),
                )

        def read(start, stop):
            return backend.export_read_range(key, start, stop)
    else:
        replica = ready_replica(link.image)
        if replica is None:
            return _gone(
                request,
                status=410,
                title=_("This download link no longer works"),
                message=_("No stored copy of the image is ready any more."),
            )
        backend = get_backend(replica.storage)
        key = replica.key
        size, etag, last_modified = (
            replica.size or link.image.size,
            _quoted(link.image.sha256),
            replica.created_at,
        )
        path = None
        url = backend.presigned_url(
            key, expires_in=link_seconds_left(link), filename=link.filename, method=request.method
        )

        def read(start, stop):
            return backend.read_range(key, start, stop)

    if url is not None and not _answered_here(request, size=size, etag=etag, last_modified=last_modified):
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "no-store"
    else:
        response = ranged_response(
            request,
            size=size,
            etag=etag,
            last_modified=last_modified,
            filename=link.filename,
            # A local export file goes out through FileResponse (sendfile); anything else through `read`.
            path=path,
            read=None if path is not None else read,
        )
    if request.method == "GET" and response.status_code in (200, 206, 302):
        log_download(link=link, request=request, ranges=range_text)
    return response
