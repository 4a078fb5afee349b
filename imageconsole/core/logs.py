"""Logging filters named by settings.LOGGING."""

import logging


class PermissionDeniedOneLine(logging.Filter):
    """A 403 (PermissionDenied) is an expected answer: log Django's one line, not the traceback that
    `django.request` attaches to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
