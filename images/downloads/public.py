"""`GET`/`HEAD /d/<token>/<file name>`: a download link, without a login (the token is the credential).

A standalone storage's image is streamed from its chunks (ranges.py, reading ahead at the storage's
download concurrency); an export on a standalone storage is a file, served by FileResponse so the WSGI
server may use sendfile; on a distributed storage both redirect to a presigned URL that expires no later
than the link.
"""

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from storage.backends import ReplicaNotFound, get_backend

from ..models import DownloadLink
from .ranges import ranged_response
from .services import LinkGone, link_resolve, link_seconds_left, log_download, ready_replica


def _quoted(value: str) -> str:
    return f'"{value}"' if value else ""


def _gone(request, *, status: int, title: str, message: str):
    response = render(
        request, "images/downloads/link_error.html", {"title": title, "message": message}, status=status
    )
    response["Cache-Control"] = "no-store"
    return response


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
        url = backend.export_url(export.key, expires_in=link_seconds_left(link), filename=link.filename)
        if url is None:
            path = backend.export_path(export.key)
            try:
                size = backend.export_size(export.key)
            except ReplicaNotFound:
                return _gone(
                    request,
                    status=410,
                    title=_("This download link no longer works"),
                    message=_("The exported file of this link was deleted."),
                )
            response = ranged_response(
                request,
                size=size,
                etag=_quoted(export.sha256),
                last_modified=export.finished_at,
                filename=link.filename,
                path=path,
                # A storage server's export is no local file: read it through the backend.
                read=None
                if path is not None
                else (lambda start, stop, key=export.key: backend.export_read_range(key, start, stop)),
            )
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
        url = backend.presigned_url(replica.key, expires_in=link_seconds_left(link), filename=link.filename)
        if url is None:
            key = replica.key
            response = ranged_response(
                request,
                size=replica.size or link.image.size,
                etag=_quoted(link.image.sha256),
                last_modified=replica.created_at,
                filename=link.filename,
                read=lambda start, stop: backend.read_range(key, start, stop),
            )
    if url is not None:
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "no-store"
    if request.method == "GET" and response.status_code in (200, 206, 302):
        log_download(link=link, request=request, ranges=range_text)
    return response
