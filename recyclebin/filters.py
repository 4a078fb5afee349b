"""The recycle bin's filters, search and sorting: the image list's FilterSet (same parameters, so the page
and `GET /api/v1/recycle-bin/` filter as the list does), with the bin's statuses and its own columns."""

import django_filters
from django.utils.translation import gettext_lazy as _

from images.filters import ALL, ORDERING_FIELDS, ORDERING_LABELS, ImageFilter, ImageOrderingFilter
from images.models import Image

BIN_ORDERING_FIELDS = {
    **ORDERING_FIELDS,
    "deleted": ("deleted_at",),
    "purge_after": ("purge_after",),
}
BIN_ORDERING_LABELS = {**ORDERING_LABELS, "deleted": _("Deleted"), "purge_after": _("Expunged at")}
BIN_DEFAULT_ORDERING = ("-deleted_at", "-pk")


class BinOrderingFilter(ImageOrderingFilter):
    def __init__(self, *args, **kwargs):
        kwargs["fields"] = {name: name for name in BIN_ORDERING_FIELDS}
        kwargs["field_labels"] = BIN_ORDERING_LABELS
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        ordering = []
        for param in value or ():
            descending = param.startswith("-")
            for field in BIN_ORDERING_FIELDS[param.lstrip("-")]:
                ordering.append(f"-{field}" if descending else field)
        if not ordering:
            return qs.order_by(*BIN_DEFAULT_ORDERING)
        if not {"pk", "-pk", "id", "-id"} & set(ordering):
            ordering.append("-pk")
        return qs.order_by(*ordering)


class RecycleBinFilter(ImageFilter):
    status = django_filters.ChoiceFilter(
        choices=[(s.value, s.label) for s in (Image.Status.DELETED, Image.Status.DELETING)],
        label=_("Status"),
        empty_label=ALL,
    )
    ordering = BinOrderingFilter(label=_("Sort by"))

    @property
    def qs(self):
        queryset = super(ImageFilter, self).qs
        if not queryset.query.order_by:
            queryset = queryset.order_by(*BIN_DEFAULT_ORDERING)
        return queryset
