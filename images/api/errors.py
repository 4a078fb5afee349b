"""Import errors as API responses: a 4xx whose body says what is wrong and what to do."""

from django.core.exceptions import ValidationError
from rest_framework.response import Response

from ..inspection import ImportRefused
from ..services.imports import ImportNotAccepted

# Refusals for lack of room (quota, storage, staging, target size) answer 413.
TOO_LARGE_CODES = {"quota_bytes", "storage_full", "staging_full", "too_large"}


def error_response(error: Exception, *, headers: dict | None = None) -> Response:
    if isinstance(error, ImportRefused):
        return Response({"detail": error.message, "code": error.code}, status=422, headers=headers)
    if isinstance(error, ImportNotAccepted):
        body = {"detail": error.message}
        offset = getattr(error, "offset", None)
        if offset is not None:
            body["offset"] = offset
        if error.status == 503:
            headers = {**(headers or {}), "Retry-After": "30"}
        return Response(body, status=error.status, headers=headers)
    if isinstance(error, ValidationError):
        code = getattr(error, "code", None)
        if hasattr(error, "error_dict"):
            body = {
                field: [str(m) for e in errors for m in e.messages]
                for field, errors in error.error_dict.items()
            }
            return Response(body, status=400, headers=headers)
        status = 413 if code in TOO_LARGE_CODES else 400
        return Response(
            {"detail": " ".join(str(m) for m in error.messages), "code": code}, status=status, headers=headers
        )
    raise error


HANDLED = (ImportRefused, ImportNotAccepted, ValidationError)
