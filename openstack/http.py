"""Responses and the base view of the OpenStack endpoints: errors in the shapes OpenStack services use."""

import json
import uuid
from http import HTTPStatus

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .selectors import caller_for_token


class ApiError(Exception):
    """An error answered as `{"message", "code", "title"}` (Glance's JSON error body)."""

    def __init__(self, status: int, message: str, *, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, message: str, *, headers: dict | None = None, as_json: bool = True
) -> HttpResponse:
    """Glance's error bodies (webob's): JSON when the client accepts it, else its plain text."""
    phrase = HTTPStatus(status).phrase
    if as_json:
        body = {"message": message, "code": f"{status} {phrase}", "title": phrase}
        response = JsonResponse(body, status=status)
    else:
        text = f"{status} {phrase}\n\n{message}\n\n   "
        response = HttpResponse(text, status=status, content_type="text/plain; charset=UTF-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def json_response(data, *, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = JsonResponse(data, status=status, safe=False)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def validation_message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(
            ("" if field == "__all__" else f"{field}: ") + " ".join(messages)
            for field, messages in error.message_dict.items()
        )
    return " ".join(str(m) for m in error.messages)


def read_json(request):
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, _("The body is not valid JSON.")) from error


@method_decorator(csrf_exempt, name="dispatch")
class OpenStackView(View):
    """A view of the Image API: the caller from `X-Auth-Token`, errors as JSON in Glance's shape."""

    authenticated = True

    def dispatch(self, request, *args, **kwargs):
        response = self._dispatch(request, *args, **kwargs)
        if response.status_code == 204 and "Content-Type" in response:
            del response["Content-Type"]
        response["X-Openstack-Request-Id"] = f"req-{uuid.uuid4()}"
        return response

    def _dispatch(self, request, *args, **kwargs):
        try:
            if self.authenticated:
                caller = caller_for_token(
                    request.headers.get("X-Auth-Token", ""),
                    tenant_hint=request.headers.get("X-Tenant", "")
                    or request.headers.get("X-Project-Id", ""),
                )
                if caller is None:
                    return self.render_error(
                        401,
                        _(
                            "This server could not verify that you are authorized to access the document you requested."
                        ),
                        headers={"WWW-Authenticate": 'Keystone uri="/openstack/identity/v3"'},
                    )
                request.caller = caller
                request.user = caller.user
                request.tenant = caller.tenant
                request.membership = caller.membership
            return super().dispatch(request, *args, **kwargs)
        except ApiError as error:
            return self.render_error(error.status, error.message, headers=error.headers)
        except Http404 as error:
            return self.render_error(404, str(error) or _("No such resource."))
        except PermissionDenied as error:
            return self.render_error(403, str(error) or _("Forbidden."))
        except ValidationError as error:
            return self.render_error(400, validation_message(error))

    def render_error(self, status: int, message: str, *, headers: dict | None = None) -> HttpResponse:
        accept = self.request.headers.get("Accept", "")
        return error_response(status, message, headers=headers, as_json="json" in accept)

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = self.render_error(405, _("The method is not allowed for this resource."))
        response["Allow"] = ", ".join(m.upper() for m in self._allowed_methods())
        return response

    def require_manage(self, request):
        if not request.caller.can_manage:
            raise ApiError(403, _("Your account may view this tenant's images but not change them."))
