"""Tenant-scoped reads of images. Views, the API and the export reach images only through these.

What a tenant sees: its own images (limited to a sub-account's project groups) and the available images
other tenants share with it (with it by name, or globally), never a deleted one. Another tenant's image
that is not shared is simply not found.
"""

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.http import Http404
from django.utils.translation import gettext as _

from tenants.models import Membership, Tenant
from tenants.selectors import scope_q

from .models import Image, ImageCount, ImageShare, UploadSession

# The list's two tabs (seed 000): self-made images (system and volume) and ISO images.
SELF_MADE_KINDS = (Image.Kind.SYSTEM, Image.Kind.VOLUME)
ISO_KINDS = (Image.Kind.ISO,)
TAB_KINDS = {"self": SELF_MADE_KINDS, "iso": ISO_KINDS}


def _shared_with_q(tenant: Tenant) -> Q:
    """Other tenants' available images shared with `tenant`. A subquery, not a join: a join on the
    shared_with table would repeat an image once per tenant it is shared with."""
    shared_here = ImageShare.objects.filter(
        image_id=OuterRef("pk"), tenant_id=tenant.pk, status=ImageShare.Status.ACCEPTED
    )
    return Q(status=Image.Status.AVAILABLE) & (
        Q(sharing=Image.Sharing.GLOBAL) | (Q(sharing=Image.Sharing.TENANTS) & Exists(shared_here))
    )


def images_owned(*, tenant: Tenant, membership: Membership | None) -> QuerySet[Image]:
    """The tenant's own images this membership may act on (not deleted, within its project groups)."""
    return (
        Image.objects.for_tenant(tenant)
        .filter(scope_q(membership, field="project_group"))
        .exclude(status=Image.Status.DELETED)
    )


def upload_session_owned(*, pk, tenant: Tenant, membership: Membership | None) -> UploadSession | None:
    """The upload (tus) of one of `images_owned`, with its image; None when there is none such. One join,
    not a subquery: every PATCH of an upload sent in pieces asks."""
    return (
        UploadSession.objects.select_related("image")
        .defer("receive_state")  # (40 KB a PATCH need not read twice: its receiver reads it)
        .filter(pk=pk, image__tenant=tenant)
        .filter(scope_q(membership, field="image__project_group"))
        .exclude(image__status=Image.Status.DELETED)
        .first()
    )


def images_deleted(*, tenant: Tenant, membership: Membership | None) -> QuerySet[Image]:
    """The tenant's images in the recycle bin (`deleted`) or being expunged (`deleting`), within the
    membership's project groups: what the recycle bin shows and a deleted image's API detail reads."""
    return (
        Image.objects.for_tenant(tenant)
        .filter(scope_q(membership, field="project_group"))
        .filter(status__in=[Image.Status.DELETED, Image.Status.DELETING])
    )


def images_visible(
    *, tenant: Tenant, membership: Membership | None, kinds=None, include_shared: bool = True
) -> QuerySet[Image]:
    """Every image the list shows: own images plus images shared with the tenant, minus deleted ones.

    `kinds` narrows to a tab (TAB_KINDS). Rows come with their project group, storage and owning tenant
    so a page renders without a query per row.
    """
    own = Q(tenant=tenant) & scope_q(membership, field="project_group")
    visible = own | (~Q(tenant=tenant) & _shared_with_q(tenant)) if include_shared else own
    queryset = Image.objects.filter(visible).exclude(status=Image.Status.DELETED)
    if kinds:
        queryset = queryset.filter(kind__in=list(kinds))
    return queryset.select_related("project_group", "storage", "tenant")


# From this row on a page is found by its keys first (see ImageListing._slice).
KEYS_FIRST_FROM = 1000
# Above this many shared images the list stops naming them one by one and lets the database find them.
SHARED_IDS_MAX = 500


def shared_image_ids(*, tenant: Tenant) -> list | None:
    """Ids of the images other tenants share with `tenant` and that it may see now, or None when there
    are more than SHARED_IDS_MAX. Found through the (small) index on `sharing` and the shared-with
    table, with status checked here: a query that also named the status would let SQLite pick the
    status index and read most of the table."""
    chosen = set(
        ImageShare.objects.filter(tenant_id=tenant.pk, status=ImageShare.Status.ACCEPTED)
        .order_by()
        .values_list("image_id", flat=True)
    )
    rows = (
        Image.objects.filter(sharing__in=[Image.Sharing.GLOBAL, Image.Sharing.TENANTS])
        .exclude(tenant=tenant)
        .order_by()
        .values_list("pk", "sharing", "status")
    )
    ids = []
    for pk, sharing, status in rows.iterator(chunk_size=2000):
        if status == Image.Status.AVAILABLE and (sharing == Image.Sharing.GLOBAL or pk in chosen):
            ids.append(pk)
            if len(ids) > SHARED_IDS_MAX:
                return None
    return ids


def image_listing(
    *, tenant: Tenant, membership: Membership | None, kinds=None, filterset=None
) -> "ImageListing":
    """The list's images (what `images_visible` holds), filtered and sorted by a bound, validated
    ImageFilter, as a Paginator's object list.

    The tenant's own images and the images shared with it are built as two simple queries, each
    scoped on its own (own: the tenant and the membership's project groups; shared: the ids
    `shared_image_ids` found), so that each can use its index instead of one OR that defeats them.
    """
    own = images_owned(tenant=tenant, membership=membership)
    ids = shared_image_ids(tenant=tenant)
    if ids == []:
        shared = None
    else:
        # Naming the sharing modes again is redundant but steers SQLite (without statistics) to an
        # index on the few shared rows instead of one on a filtered column such as status.
        shared = Image.objects.filter(sharing__in=[Image.Sharing.GLOBAL, Image.Sharing.TENANTS])
        shared = (
            shared.filter(pk__in=ids)
            if ids is not None
            else shared.filter(~Q(tenant=tenant) & _shared_with_q(tenant))
        )
    if filterset is not None:
        filterset.is_valid()  # filter_queryset reads the form's cleaned data
    counted = None
    counted_filters = _counted_filters(filterset)
    if counted_filters is not None and not scope_q(membership, field="project_group"):
        # Filtered by nothing, or by status, system type or kind only: the triggers' counts (ImageCount)
        # say how many there are, without reading the images.
        counted = ImageCount.objects.filter(tenant_id=tenant.pk, **counted_filters).exclude(
            status=Image.Status.DELETED
        )
        if kinds:
            counted = counted.filter(kind__in=list(kinds))
    arms = [own, shared]
    for position, arm in enumerate(arms):
        if arm is None:
            continue
        if kinds:
            arm = arm.filter(kind__in=list(kinds))
        if filterset is not None:
            arm = filterset.filter_queryset(arm)
        arms[position] = arm.select_related("project_group", "storage", "tenant")
    return ImageListing(own=arms[0], shared=arms[1], own_counts=counted)


def image_status_counts(*, tenant: Tenant, membership: Membership | None) -> dict[str, int]:
    """How many images of each status this membership sees: what the list shows (own images within its
    project groups, and those shared with the tenant) and, as `deleted`, its own in the recycle bin.
    The dashboard's figures; their sum without `deleted` is the list's total over both tabs."""
    counts = dict.fromkeys(Image.Status.values, 0)
    scope = scope_q(membership, field="project_group")
    if scope:
        own = Image.objects.for_tenant(tenant).filter(scope).values("status").annotate(n=Count("pk"))
    else:
        own = ImageCount.objects.filter(tenant_id=tenant.pk).values("status").annotate(n=Sum("n"))
    for row in own.order_by():
        counts[row["status"]] += row["n"]
    shared = image_listing(tenant=tenant, membership=membership).shared
    if shared is not None:
        for row in shared.select_related(None).order_by().values("status").annotate(n=Count("pk")):
            counts[row["status"]] += row["n"]
    return counts


# The filters ImageCount can answer: the ImageFilter field, and the count's column.
COUNTED_FILTERS = {"status": "status", "os_type": "os_type", "kind": "kind"}


def _counted_filters(filterset) -> dict | None:
    """The ImageCount lookups equal to a bound, validated ImageFilter's filters, or None when it filters
    on something else (sorting is not filtering)."""
    if filterset is None:
        return {}
    lookups = {}
    for name, value in getattr(filterset.form, "cleaned_data", {}).items():
        if name == "ordering" or value in (None, "", [], ()):
            continue
        if name not in COUNTED_FILTERS:
            return None
        lookups[COUNTED_FILTERS[name]] = value
    return lookups


class ImageListing:
    """Own and shared images as one sorted sequence for a Paginator, fast at any depth.

    Counted apart (the tenant's own images from the ImageCount table when the filters allow); a
    page is read from the own images alone when nothing is shared, else as the keys of
    one UNION ALL of the two, then the rows for those keys only. Pages past the middle are read from the
    other end in the reverse order, so the last page costs what the first does.
    """

    def __init__(
        self, *, own: QuerySet[Image], shared: QuerySet[Image] | None, own_counts: QuerySet | None = None
    ):
        self.own = own
        self.shared = shared
        self.own_counts = own_counts  # ImageCount rows that sum to own.count(), when they can
        self.ordering = [str(term) for term in (own.query.order_by or Image._meta.ordering)]
        self._count = None

    def count(self) -> int:
        if self._count is None:
            if self.own_counts is not None:
                own = self.own_counts.aggregate(total=Sum("n"))["total"] or 0
            else:
                own = self.own.count()
            self._count = own + (self.shared.count() if self.shared is not None else 0)
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        if not isinstance(index, slice):
            return self[index : index + 1][0]
        start, stop = index.start or 0, index.stop
        total = self.count()
        stop = total if stop is None else min(stop, total)
        if start >= stop:
            return []
        if start > total - stop:
            rows = self._slice(_reverse(self.ordering), total - stop, total - start)
            rows.reverse()
            return rows
        return self._slice(self.ordering, start, stop)

    def _slice(self, ordering: list[str], start: int, stop: int) -> list[Image]:
        if self.shared is None and start < KEYS_FIRST_FROM:
            return list(self.own.order_by(*ordering)[start:stop])
        if self.shared is None:
            # Deep in the list: skip over keys the index holds, not over whole rows.
            keys = list(
                self.own.select_related(None).order_by(*ordering).values_list("pk", flat=True)[start:stop]
            )
        else:
            keys = self._keys(ordering, start, stop)
        # The keys come from scoped queries; reading them back by primary key alone keeps the plan simple.
        rows = Image.objects.select_related("project_group", "storage", "tenant").in_bulk(keys)
        return [rows[key] for key in keys if key in rows]

    def _keys(self, ordering: list[str], start: int, stop: int) -> list:
        aliases = {}
        aliased_ordering = []
        for position, term in enumerate(ordering):
            alias = f"_sort{position}"
            aliases[alias] = F(term.lstrip("-"))
            aliased_ordering.append(("-" if term.startswith("-") else "") + alias)

        def keyed(queryset):
            return (
                queryset.order_by()
                .select_related(None)
                .annotate(_key=F("pk"), **aliases)
                .values_list("_key", *aliases)
            )

        own, shared = keyed(self.own), keyed(self.shared)
        if connection.features.supports_slicing_ordering_in_compound:
            # PostgreSQL: each part sorted and cut at `stop` walks its index instead of sorting everything.
            own = own.order_by(*aliased_ordering)[:stop]
            shared = shared.order_by(*aliased_ordering)[:stop]
        combined = own.union(shared, all=True).order_by(*aliased_ordering)
        return [row[0] for row in combined[start:stop]]


def _reverse(ordering: list[str]) -> list[str]:
    return [term[1:] if term.startswith("-") else f"-{term}" for term in ordering]


def image_get(*, tenant: Tenant, membership: Membership | None, pk) -> Image:
    """One image this tenant may see; anything else (another tenant's, deleted, a bad id) is a 404."""
    try:
        return images_visible(tenant=tenant, membership=membership).get(pk=pk)
    except (Image.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        # A malformed UUID is as "not found" as another tenant's one.
        raise Http404(_("No such image.")) from exc


def image_is_own(*, image: Image, tenant: Tenant) -> bool:
    """False for an image another tenant shares with this one: it is read-only here."""
    return image.tenant_id == tenant.pk


def images_offered(*, tenant: Tenant, statuses=(ImageShare.Status.PENDING,)) -> QuerySet[Image]:
    """Available images other tenants share with `tenant` whose share it has not accepted (by default:
    those awaiting its answer). Shown so the tenant can accept or reject them; not usable until then."""
    offered = ImageShare.objects.filter(
        image_id=OuterRef("pk"), tenant_id=tenant.pk, status__in=list(statuses)
    )
    return (
        Image.objects.filter(sharing=Image.Sharing.TENANTS, status=Image.Status.AVAILABLE)
        .exclude(tenant=tenant)
        .filter(Exists(offered))
        .select_related("tenant")
    )


def image_offered_get(*, tenant: Tenant, pk) -> Image:
    """An image shared with `tenant` in any share status (to accept, reject, or read its share)."""
    try:
        return images_offered(tenant=tenant, statuses=ImageShare.Status.values).get(pk=pk)
    except (Image.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise Http404(_("No such image.")) from exc


def image_shares(*, image: Image) -> QuerySet[ImageShare]:
    """Who the image is shared with, and each tenant's answer (for its owner only)."""
    return ImageShare.objects.filter(image=image).select_related("tenant").order_by("tenant__name")


def image_share_of(*, image: Image, tenant: Tenant) -> ImageShare | None:
    return ImageShare.objects.filter(image=image, tenant=tenant).first()


# --- the dashboard ------------------------------------------------------------------------------------


def _own_in_scope(*, tenant: Tenant, membership: Membership | None) -> QuerySet[Image]:
    """The tenant's own images this membership may see, the deleted ones (recycle bin) included."""
    return Image.objects.for_tenant(tenant).filter(scope_q(membership, field="project_group"))


def images_in_progress(*, tenant: Tenant, membership: Membership | None, limit: int = 5) -> list[Image]:
    return list(
        _own_in_scope(tenant=tenant, membership=membership)
        .filter(status__in=list(Image.TRANSITIONAL))
        .exclude(status=Image.Status.DELETING)
        .order_by("-updated_at")[:limit]
    )


def recent_failures(*, tenant: Tenant, membership: Membership | None, limit: int = 5) -> list[Image]:
    return list(
        _own_in_scope(tenant=tenant, membership=membership)
        .filter(status=Image.Status.FAILED)
        .order_by("-updated_at")[:limit]
    )


def images_per_month(*, tenant: Tenant, membership: Membership | None, months: int = 12) -> list[dict]:
    """[{month: date, images: n, bytes: n}] for the last `months` months (oldest first, empty months kept),
    of the images that are not deleted, by the month they were created in (the current time zone)."""
    from datetime import date

    from django.db.models.functions import TruncMonth
    from django.utils import timezone

    today = timezone.localdate()
    first = date(today.year, today.month, 1)
    starts = []
    year, month = first.year, first.month
    for _n in range(months):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    starts.reverse()
    rows = (
        _own_in_scope(tenant=tenant, membership=membership)
        .exclude(status=Image.Status.DELETED)
        .filter(created_at__date__gte=starts[0])
        .annotate(month=TruncMonth("created_at"))
        .order_by()
        .values("month")
        .annotate(images=Count("pk"), bytes=Sum("size"))
    )
    found = {}
    for row in rows:
        month_start = row["month"].date() if hasattr(row["month"], "date") else row["month"]
        found[month_start.replace(day=1)] = row
    return [
        {
            "month": start,
            "images": found.get(start, {}).get("images", 0),
            "bytes": found.get(start, {}).get("bytes") or 0,
        }
        for start in starts
    ]


def images_per_format(*, tenant: Tenant, membership: Membership | None) -> list[dict]:
    """[{format, images, bytes}] of the images that are not deleted, largest first."""
    rows = (
        _own_in_scope(tenant=tenant, membership=membership)
        .exclude(status=Image.Status.DELETED)
        .order_by()
        .values("disk_format")
        .annotate(images=Count("pk"), bytes=Sum("size"))
    )
    return sorted(
        ({"format": r["disk_format"], "images": r["images"], "bytes": r["bytes"] or 0} for r in rows),
        key=lambda r: (-r["images"], r["format"]),
    )
