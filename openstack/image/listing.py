"""`GET /v2/images`: Glance's filters, sorting (`sort_key`/`sort_dir` or `sort`), `limit`/`marker` paging
with a `next` link, and `changes-since`, over the images app's tenant-scoped selector."""

from datetime import datetime
from urllib.parse import urlencode

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from images.models import Image

from ..http import ApiError
from .access import visible_images
from .serialize import SHARING, image_body
from .staging import is_staged

LIMIT_DEFAULT = 25
LIMIT_MAX = 1000
SORT_KEYS = {
    "name": "name",
    "status": "status",
    "disk_format": "disk_format",
    "size": "size",
    "virtual_size": "virtual_size",
    "id": "id",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "min_disk": "min_disk",
    "min_ram": "min_ram",
    "visibility": "sharing",
    "owner": "tenant_id",
}
STATUS_Q = {
    "active": Q(status=Image.Status.AVAILABLE, enabled=True),
    "deactivated": Q(status=Image.Status.AVAILABLE, enabled=False),
    "killed": Q(status=Image.Status.FAILED),
    "queued": Q(status=Image.Status.UPLOADING, stage=Image.Stage.QUEUED),
    "uploading": Q(status=Image.Status.UPLOADING, stage=Image.Stage.QUEUED),
    "saving": Q(status__in=[Image.Status.UPLOADING, Image.Status.CREATING]) & ~Q(stage=Image.Stage.QUEUED),
    "importing": Q(status=Image.Status.UPLOADING) & ~Q(stage=Image.Stage.QUEUED),
    "deleted": Q(pk__in=[]),
    "pending_delete": Q(pk__in=[]),
}
OPERATORS = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte", "eq": "exact", "neq": None}


def _int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError as error:
        raise ApiError(400, _("%(name)s must be a whole number.") % {"name": name}) from error
    if number < 0:
        raise ApiError(400, _("%(name)s must be 0 or more.") % {"name": name})
    return number


def _time_filter(field: str, value: str) -> Q:
    operator, _sep, when = value.partition(":")
    if operator not in OPERATORS or not when:
        raise ApiError(
            400, _("Give %(field)s as OPERATOR:TIME (gt, gte, lt, lte, eq, neq).") % {"field": field}
        )
    moment = _parse_time(when, field)
    if operator == "neq":
        return ~Q(**{field: moment})
    return Q(**{f"{field}__{OPERATORS[operator]}": moment})


def _parse_time(value: str, name: str) -> datetime:
    moment = parse_datetime(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if moment is None:
        raise ApiError(400, _("%(name)s is not an ISO 8601 time.") % {"name": name})
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment


def _ordering(params) -> list[str]:
    terms = []
    if "sort" in params:
        if "sort_key" in params or "sort_dir" in params:
            raise ApiError(400, _("Use sort or sort_key/sort_dir, not both."))
        for part in params["sort"].split(","):
            key, _sep, direction = part.strip().partition(":")
            terms.append((key, direction or "desc"))
    else:
        keys = params.getlist("sort_key") or ["created_at"]
        dirs = params.getlist("sort_dir") or ["desc"]
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise ApiError(400, _("Give one sort_dir, or one per sort_key."))
        terms = [(key, dirs[index] if len(dirs) > 1 else dirs[0]) for index, key in enumerate(keys)]
    ordering = []
    for key, direction in terms:
        if key not in SORT_KEYS:
            raise ApiError(400, _("Sort key %(key)s is not supported.") % {"key": key})
        if direction not in ("asc", "desc"):
            raise ApiError(400, _("Sort direction %(dir)s is not asc or desc.") % {"dir": direction})
        ordering.append(("-" if direction == "desc" else "") + SORT_KEYS[key])
    if not any(term.lstrip("-") in ("id", "pk") for term in ordering):
        ordering.append("-created_at" if "created_at" not in ordering else "-pk")
        ordering.append("-pk")
    return ordering


def image_list(request) -> dict:
    params = request.GET
    queryset = visible_images(request).prefetch_related(None)
    tenant = request.tenant
    member_status = params.get("member_status")
    if member_status and member_status not in ("pending", "accepted", "rejected", "all"):
        raise ApiError(400, _("Invalid member_status value: %(value)s") % {"value": member_status})
    if member_status and member_status != "accepted":
        # Images shared with this tenant in another state than accepted (or in any, with the visible
        # ones): the rows every other filter then narrows.
        from .members import offered_images

        queryset = offered_images(request, status=member_status)
    if "name" in params:
        name = params["name"]
        queryset = (
            queryset.filter(name__in=name[3:].split(","))
            if name.startswith("in:")
            else queryset.filter(name=name)
        )
    if "status" in params:
        wanted = (
            params["status"].split(",")
            if not params["status"].startswith("in:")
            else params["status"][3:].split(",")
        )
        condition = Q(pk__in=[])
        for status in wanted:
            if status not in STATUS_Q:
                raise ApiError(400, _("Invalid status value: %(status)s") % {"status": status})
            condition |= STATUS_Q[status]
        queryset = queryset.filter(condition)
    visibility = params.get("visibility")
    if visibility:
        if visibility not in ("public", "private", "shared", "community", "all"):
            raise ApiError(400, _("Invalid visibility value: %(value)s") % {"value": visibility})
        if visibility == "community":
            queryset = queryset.none()
        elif visibility != "all":
            queryset = queryset.filter(sharing=SHARING[visibility])
    if "owner" in params:
        queryset = queryset.filter(tenant_id=int(params["owner"]) if params["owner"].isdigit() else None)
    for tag in params.getlist("tag"):
        queryset = (
            queryset.filter(labels__contains=[tag])
            if _json_contains()
            else queryset.filter(labels__icontains=f'"{tag}"')
        )
    if "disk_format" in params:
        queryset = queryset.filter(disk_format__in=params["disk_format"].removeprefix("in:").split(","))
    if "container_format" in params:
        formats = params["container_format"].removeprefix("in:").split(",")
        condition = Q(pk__in=[])
        if "ova" in formats:
            condition |= Q(source_format="ova")
        if "bare" in formats:
            condition |= ~Q(source_format="ova")
        queryset = queryset.filter(condition)
    if "size_min" in params:
        queryset = queryset.filter(size__gte=_int(params["size_min"], "size_min"))
    if "size_max" in params:
        queryset = queryset.filter(size__lte=_int(params["size_max"], "size_max"))
    if "protected" in params:
        if params["protected"] not in ("true", "false"):
            raise ApiError(400, _("protected must be true or false."))
        queryset = queryset.filter(protected=params["protected"] == "true")
    for field in ("created_at", "updated_at"):
        if field in params:
            queryset = queryset.filter(_time_filter(field, params[field]))
    if "changes-since" in params:
        queryset = queryset.filter(updated_at__gte=_parse_time(params["changes-since"], "changes-since"))
    # Free-form property filters: ?os_distro=ubuntu
    known = {"name", "status", "visibility", "member_status", "owner", "tag", "disk_format", "container_format",
             "size_min", "size_max", "protected", "created_at", "updated_at", "changes-since", "sort", "sort_key",
             "sort_dir", "limit", "marker", "os_hidden"}  # fmt: skip
    properties = [key for key in params if key not in known]
    for index, key in enumerate(properties):
        # The name is one key of the properties, compared as text; never parsed as a query lookup.
        alias = f"property_{index}"
        queryset = queryset.alias(**{alias: KeyTextTransform(key, "properties")}).filter(
            **{alias: params[key]}
        )
    ordering = _ordering(params)
    queryset = queryset.order_by(*ordering)
    limit = min(_int(params.get("limit", str(LIMIT_DEFAULT)), "limit"), LIMIT_MAX)
    marker = params.get("marker")
    if marker:
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        if marker not in ids:
            raise ApiError(400, _("marker %(marker)s is not an image in this list.") % {"marker": marker})
        queryset = queryset.filter(pk__in=ids[ids.index(marker) + 1 : ids.index(marker) + 1 + limit])
        queryset = queryset.order_by(*ordering)
        page = list(queryset)
    else:
        page = list(queryset[:limit])
    body = {
        "images": [image_body(image, tenant=tenant, staged=is_staged(image)) for image in page],
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }
    if len(page) == limit and limit:
        query = [(key, value) for key in params for value in params.getlist(key) if key != "marker"]
        query.append(("marker", str(page[-1].pk)))
        body["next"] = "/v2/images?" + urlencode(query)
    return body


def _json_contains() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"
