"""Sizes in a message that compares them ("has 4.0 MB free and the image needs 4.0 MB" says nothing)."""

from django.template.defaultfilters import filesizeformat
from django.utils.formats import number_format

from .words import gettext as _


def sizes_apart(*values: int) -> list[str]:
    """Human sizes, or exact byte counts when rounding would show two different sizes as one.

    The byte counts are messages (imageconsole.core.words): a message stored with them is worded again in
    its reader's language.
    """
    shown = [str(filesizeformat(max(value, 0))) for value in values]
    if len(set(shown)) < len(set(values)):
        shown = [
            _("%(count)s bytes") % {"count": number_format(max(value, 0), force_grouping=True)}
            for value in values
        ]
    return shown
