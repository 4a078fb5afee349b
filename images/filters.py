"""The image list's filters, search and sorting: one FilterSet for the console list, the Excel export
and the API, so the three always agree on what "the current filter" means.

Query parameters (kept in the URL): status, os_type, platform, architecture, disk_format, project_group,
label, enabled, kind, q (name or resource ID), ordering (a column, `-` for descending).
"""

import json
import uuid

import django_filters
from django.db import connection
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from tenants.selectors import project_groups_visible

from .models import Image

# Columns the list can be sorted by: the URL's name for it, and the fields it sorts on.
ORDERING_FIELDS = {
    "name": ("name",),
    "id": ("id",),
    "status": ("status", "progress"),
    "encrypted": ("encrypted",),
    "features": ("cloud_init", "qemu_ga", "hot_upgrade"),
    "os_type": ("os_type",),
    "os": ("platform", "os_version", "architecture"),
    "project_group": ("project_group__name",),
    "disk_format": ("disk_format",),
    "size": ("size",),
    "created": ("created_at",),
    "kind": ("kind",),
    "architecture": ("architecture",),
    "enabled": ("enabled",),
    "storage": ("storage__name",),
}
ORDERING_LABELS = {
    "name": _("Name"),
    "id": _("Resource ID"),
    "status": _("Status"),
    "encrypted": _("Encrypted"),
    "features": _("Feature support"),
    "os_type": _("System type"),
    "os": _("Operating system"),
    "project_group": _("Project group"),
    "disk_format": _("Format"),
    "size": _("Size"),
    "created": _("Created"),
    "kind": _("Image type"),
    "architecture": _("Architecture"),
    "enabled": _("Enabled"),
    "storage": _("Image storage"),
}
DEFAULT_ORDERING = ("-created_at", "-pk")
ALL = pgettext_lazy("Filter: no restriction", "All")


def _project_groups(request):
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        from tenants.models import ProjectGroup

        return ProjectGroup.objects.none()
    return project_groups_visible(tenant=tenant, membership=getattr(request, "membership", None))


class ImageOrderingFilter(django_filters.OrderingFilter):
    """Sort by one column (some columns sort on several fields), always ending in `-pk` so that rows
    with equal values keep their page across requests."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fields", {name: name for name in ORDERING_FIELDS})
        kwargs.setdefault("field_labels", ORDERING_LABELS)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        ordering = []
        for param in value or ():
            descending = param.startswith("-")
            for field in ORDERING_FIELDS[param.lstrip("-")]:
                ordering.append(f"-{field}" if descending else field)
        if not ordering:
            return qs.order_by(*DEFAULT_ORDERING)
        if "pk" not in ordering and "-pk" not in ordering and "id" not in ordering and "-id" not in ordering:
            ordering.append("-pk")
        return qs.order_by(*ordering)


class ImageFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_search",
        label=_("Search"),
        help_text=_("Part of the name, or the resource ID (or its beginning)."),
    )
    status = django_filters.ChoiceFilter(
        choices=[c for c in Image.Status.choices if c[0] != Image.Status.DELETED],
        label=_("Status"),
        empty_label=ALL,
    )
    os_type = django_filters.ChoiceFilter(
        choices=Image.OSType.choices, label=_("System type"), empty_label=ALL
    )
    platform = django_filters.CharFilter(field_name="platform", lookup_expr="iexact", label=_("Platform"))
    architecture = django_filters.ChoiceFilter(
        choices=Image.Architecture.choices, label=_("Architecture"), empty_label=ALL
    )
    disk_format = django_filters.ChoiceFilter(
        choices=Image.DiskFormat.choices, label=_("Format"), empty_label=ALL
    )
    kind = django_filters.ChoiceFilter(choices=Image.Kind.choices, label=_("Image type"), empty_label=ALL)
    project_group = django_filters.ModelChoiceFilter(
        queryset=_project_groups, label=_("Project group"), empty_label=ALL
    )
    label = django_filters.CharFilter(method="filter_label", label=_("Label"))
    enabled = django_filters.ChoiceFilter(
        choices=[
            ("true", pgettext_lazy("Image filter", "Enabled")),
            ("false", pgettext_lazy("Image filter", "Disabled")),
        ],
        method="filter_enabled",
        label=pgettext_lazy("Image filter", "Enabled"),
        empty_label=ALL,
    )
    ordering = ImageOrderingFilter(label=_("Sort by"))

    class Meta:
        model = Image
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        try:
            return queryset.filter(Q(pk=uuid.UUID(value)) | Q(name__icontains=value))
        except ValueError:
            pass
        match = Q(name__icontains=value)
        compact = value.replace("-", "")
        if len(compact) >= 4 and all(c in "0123456789abcdefABCDEF" for c in compact):
            match |= Q(id__istartswith=value)
        return queryset.filter(match)

    def filter_enabled(self, queryset, name, value):
        return queryset.filter(enabled=value == "true")

    def filter_label(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        if connection.features.supports_json_field_contains:
            return queryset.filter(labels__contains=[value])
        # SQLite has no JSON containment: match the label as a whole JSON string inside the list's text.
        return queryset.filter(labels__icontains=json.dumps(value))

    @property
    def qs(self):
        queryset = super().qs
        if not queryset.query.order_by:
            queryset = queryset.order_by(*DEFAULT_ORDERING)
        return queryset
