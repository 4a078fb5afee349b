"""The JSON API's exception handler: Django's ValidationError (raised by services) as a 400."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.views import exception_handler


def api_exception_handler(exc, context):
    """DRF's handler, plus Django's ValidationError (raised by services) as a 400 that names the fields."""
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            detail = {
                field: [str(m) for e in errors for m in e.messages]
                for field, errors in exc.error_dict.items()
            }
        else:
            detail = {"detail": " ".join(str(m) for m in exc.messages)}
        exc = exceptions.ValidationError(detail)
    return exception_handler(exc, context)
