"""Error pages in the console's shell: 403, 404, 410 and 500, translated, with the server's reason and
a way back. Django calls the handlers named in imageconsole/urls.py; a view that answers "gone" raises
`Gone(reason)` (GoneMiddleware renders it)."""

from django.http import HttpResponseServerError
from django.shortcuts import render
from django.template import loader
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _


class Gone(Exception):
    """The resource existed but is no longer there (an expired or revoked link, an ended upload)."""


def _reason(exception) -> str:
    # Django raises some 404s with a dict (the resolver's tried patterns) or nothing: no reason to show.
    message = exception.args[0] if exception is not None and exception.args else ""
    return message if isinstance(message, str) else ""


def _texts(status: int) -> tuple[str, str]:
    """The page's heading and what a person can do about it."""
    texts = {
        403: (
            _("You may not do this"),
            _(
                "Your account's permissions do not allow this page or action. A tenant owner can change what your account may do."
            ),
        ),
        404: (
            _("Not found"),
            _(
                "This page or resource does not exist, or it belongs to another tenant. Check the address, or find it in the lists."
            ),
        ),
        410: (
            _("No longer available"),
            _(
                "This existed but is gone: a link that expired or was revoked, or an import that ended. Ask for a new one."
            ),
        ),
        500: (
            _("Something went wrong on the server"),
            _(
                "The error was recorded for the administrators. Try again in a moment; if it keeps happening, tell your administrator what you were doing."
            ),
        ),
    }
    return texts[status]


def _context(status: int, reason: str) -> dict:
    title, help_text = _texts(status)
    return {"error_status": status, "error_title": title, "error_help": help_text, "reason": reason}


def _back_url(request) -> str:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        return referer
    return "/"


def error_page(request, *, status: int, reason: str = ""):
    context = {**_context(status, reason), "back_url": _back_url(request)}
    return render(request, "errors/error.html", context, status=status)


def permission_denied(request, exception=None):
    return error_page(request, status=403, reason=_reason(exception))


def page_not_found(request, exception=None):
    return error_page(request, status=404, reason=_reason(exception))


def server_error(request):
    # Nothing here may need the database: it may be why the request failed.
    try:
        html = loader.render_to_string("errors/error.html", _context(500, ""))
    except Exception:  # noqa: BLE001 - the last resort must not fail
        html = "<h1>Server error (500)</h1>"
    return HttpResponseServerError(html)


class GoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Gone):
            return error_page(request, status=410, reason=_reason(exception))
        return None
