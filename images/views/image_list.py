"""The image list (self-made and ISO tabs), its single-row endpoint for polling, batch delete, the Excel
export and the custom image guide. Thin views: parse, call a selector or service, render or redirect."""

from urllib.parse import quote

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.backends.utils import csrf_input
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View

from imageconsole.core.routing import url_name_exists
from tenants.permissions import TenantRequiredMixin, can_manage, require_manage
from tenants.selectors import preference_get
from tenants.services import preference_set

from ..catalog import PLATFORMS
from ..exports import export_response
from ..filters import ImageFilter
from ..list_forms import BatchSelectionForm
from ..models import Image
from ..policy import deletion_wording, row_actions
from ..rows import render_row
from ..selectors import TAB_KINDS, image_get, image_listing, images_visible
from ..services import image_batch_delete, is_uuid

PAGE_SIZES = (20, 50, 100)
DEFAULT_PAGE_SIZE = 20
# Query parameters that are not filters: they never make a list "filtered".
NON_FILTER_PARAMS = {"page", "page_size", "ordering", "tab"}
# Batch delete lists at most this many rows in its dialog; the rest are counted.
CONFIRM_LIST_MAX = 100


# Columns a user may hide with the column chooser (remembered per user); the others always show.
OPTIONAL_COLUMNS = (
    "encrypted",
    "features",
    "os_type",
    "os",
    "project_group",
    "disk_format",
    "size",
    "created",
)
# Hidden until a user shows them, so that the seed's columns and the date fit a 1280 px window.
# (An encrypted image also carries a badge beside its name.)
DEFAULT_HIDDEN_COLUMNS = ["encrypted", "disk_format", "size"]
COLUMNS_PREFERENCE = "image_list.hidden_columns"
# Filters always in view; the others sit behind "More filters", which opens when one of them is set.
COMMON_FILTERS = ("q", "status", "os_type")


def hidden_columns(request) -> list[str]:
    hidden = preference_get(user=request.user, key=COLUMNS_PREFERENCE, default=DEFAULT_HIDDEN_COLUMNS)
    return [key for key in hidden if key in OPTIONAL_COLUMNS]


def _columns():
    """The table's columns: key, heading, and the `ordering` value that sorts by it (None: not sortable)."""
    return [
        ("name", _("Name / resource ID"), "name"),
        ("status", _("Status"), "status"),
        ("encrypted", _("Encrypted"), "encrypted"),
        ("features", _("Feature support"), "features"),
        ("os_type", _("System type"), "os_type"),
        ("os", _("Operating system"), "os"),
        ("project_group", _("Project group"), "project_group"),
        ("disk_format", _("Format"), "disk_format"),
        ("size", _("Size"), "size"),
        ("created", _("Created"), "created"),
        ("operations", _("Operations"), None),
    ]


# URL names a row links to: the images app's own, always there.
ROW_URL_NAMES = {
    "row": "images:row",
    "detail": "images:detail",
    "edit": "images:edit",
    "labels": "images:labels",
    "sharing": "images:sharing",
    "enable": "images:enable",
    "delete": "images:delete",
    "download": "images:download",
    "export": "images:export_image",
    "cancel": "images:cancel",
}
# Actions of parts of the product built on their own: a row offers one when its URL pattern is declared
# (url_name_exists), never because a lookup failed. A declared name that does not reverse raises.
OPTIONAL_ROW_URL_NAMES: dict[str, str] = {}
_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def decorate_rows(request, images) -> None:
    """Give each image of a page what its row needs without a query or a URL lookup per row: the
    actions this user may take, and its links (reversed once per page, not per row)."""
    templates = {key: reverse(name, args=[_PLACEHOLDER]) for key, name in ROW_URL_NAMES.items()}
    for key, name in OPTIONAL_ROW_URL_NAMES.items():
        templates[key] = reverse(name, args=[_PLACEHOLDER]) if url_name_exists(name) else None
    create_vm = reverse("compute:create") if url_name_exists("compute:create") else None
    for image in images:
        image.actions = row_actions(request, image)
        pk = str(image.pk)
        image.urls = {key: t.replace(_PLACEHOLDER, pk) if t else None for key, t in templates.items()}
        image.urls["create_vm"] = create_vm


# Filters shown as a <select>, rendered from their choices by the page (Django's widget templates cost a
# few milliseconds a page).
FILTER_SELECTS = ("os_type", "architecture", "disk_format", "project_group", "enabled")


def _select_options(form, name: str, tab: str = "self") -> list[tuple[str, str, bool]]:
    """(value, label, selected) of a filter's choices, "All" first; formats the tab cannot hold are left out."""
    current = form.data.get(name, "")
    choices = form.fields[name].choices
    if name == "disk_format":
        choices = [
            (v, label) for v, label in choices if (v == Image.DiskFormat.ISO) == (tab == "iso") or v == ""
        ]
    return [(str(value), label, str(value) == current) for value, label in choices]


def show_operations(request) -> bool:
    """Whether the list has an operations column: not for an account that can take no action on any
    row. A view-only sub-account may still download images and create VMs where those parts exist."""
    return can_manage(request) or url_name_exists("images:download") or url_name_exists("compute:create")


def row_context(request, back_path: str) -> dict:
    """What every row of a page shares, worked out once per page instead of in each row: the address
    its links return to (`next`), the CSRF field of its forms, whether rows have operations, and what
    deleting is called under the deletion policy."""
    return {
        "back_path": back_path,
        "next_q": quote(back_path, safe="/"),
        "csrf_input": csrf_input(request),
        "deletion": deletion_wording(request.tenant),
        "show_operations": show_operations(request),
    }


def _tab_of(request) -> str:
    tab = request.GET.get("tab") or request.POST.get("tab") or "self"
    return tab if tab in TAB_KINDS else "self"


def _filtered(request, tab: str, data=None) -> ImageFilter:
    queryset = images_visible(tenant=request.tenant, membership=request.membership, kinds=TAB_KINDS[tab])
    return ImageFilter(request.GET if data is None else data, queryset=queryset, request=request)


def _page_size(request) -> int:
    try:
        size = int(request.GET.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def _filter_query(params) -> str:
    """The filters of a query string (no page, size or sort), for links that act on "all matching"."""
    items = [(key, value) for key in params for value in params.getlist(key) if key not in NON_FILTER_PARAMS]
    return urlencode(items)


def _sort_headers(request, columns):
    current = request.GET.get("ordering", "")
    headers = []
    for key, title, param in columns:
        direction = None
        target = None
        if param:
            if current == param:
                direction, target = "asc", f"-{param}"
            elif current == f"-{param}":
                direction, target = "desc", param
            else:
                target = param
        headers.append({"key": key, "title": title, "ordering": target, "direction": direction})
    return headers


def _list_url(tab: str) -> str:
    return reverse("images:iso_list" if tab == "iso" else "images:list")


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


class ImageListView(TenantRequiredMixin, View):
    """Self-made or ISO images: filters and sorting in the URL, pages of a chosen size, polling rows."""

    tab = "self"

    def get(self, request):
        tab = self.tab
        filterset = _filtered(request, tab)
        listing = image_listing(
            tenant=request.tenant, membership=request.membership, kinds=TAB_KINDS[tab], filterset=filterset
        )
        page = Paginator(listing, _page_size(request)).get_page(request.GET.get("page"))
        decorate_rows(request, page.object_list)
        filtered = any(request.GET.get(key) for key in request.GET if key not in NON_FILTER_PARAMS)
        tab_is_empty = False
        if not page.object_list and filtered:
            # Only an empty result asks whether the tab holds anything at all, to say what to do next.
            tab_is_empty = not images_visible(
                tenant=request.tenant, membership=request.membership, kinds=TAB_KINDS[tab]
            ).exists()
        elif not page.object_list:
            tab_is_empty = True
        filter_query = _filter_query(request.GET)
        ordering = request.GET.get("ordering", "")
        hidden = hidden_columns(request)
        operations = show_operations(request)
        export_query = urlencode([("tab", tab)]) + (f"&{filter_query}" if filter_query else "")
        if ordering:
            export_query += "&" + urlencode([("ordering", ordering)])
        context = {
            "tab": tab,
            "list_url": _list_url(tab),
            "filterset": filterset,
            "form": filterset.form,
            "selects": {name: _select_options(filterset.form, name, tab) for name in FILTER_SELECTS},
            "more_filters_open": any(
                request.GET.get(key)
                for key in ImageFilter.base_filters
                if key not in (*COMMON_FILTERS, "ordering")
            ),
            "hidden_columns": hidden,
            "optional_columns": [(key, title) for key, title, _o in _columns() if key in OPTIONAL_COLUMNS],
            "page": page,
            "page_sizes": PAGE_SIZES,
            "page_size": page.paginator.per_page,
            "headers": [
                h for h in _sort_headers(request, _columns()) if h["key"] != "operations" or operations
            ],
            "filtered": filtered,
            "tab_is_empty": tab_is_empty,
            "filter_query": filter_query,
            "export_url": f"{reverse('images:export')}?{export_query}",
            "can_manage": can_manage(request),
            "platforms": list(PLATFORMS),
            "status_choices": filterset.filters["status"].extra["choices"],
            "kind_choices": [c for c in Image.Kind.choices if c[0] in TAB_KINDS[tab]],
            "transitional": [s.value for s in Image.TRANSITIONAL],
            **row_context(request, request.get_full_path()),
        }
        if request.htmx and request.htmx.target == "image-results":
            return render(request, "images/list/results.html", context)
        return render(request, "images/list/page.html", context)


class IsoImageListView(ImageListView):
    tab = "iso"


class ListColumnsView(TenantRequiredMixin, View):
    """POST the optional columns to show (`shown`, repeated; the others are hidden): the column chooser,
    remembered for this user on every device."""

    def post(self, request):
        shown = set(request.POST.getlist("shown"))
        hidden = [key for key in OPTIONAL_COLUMNS if key not in shown]
        preference_set(user=request.user, key=COLUMNS_PREFERENCE, value=hidden)
        if request.htmx or request.headers.get("X-Requested-With") == "fetch":
            return HttpResponse(status=204)
        return HttpResponseRedirect(_safe_next(request, reverse("images:list")))


class ImageRowView(TenantRequiredMixin, View):
    """One row of the list, for rows that poll themselves while their image is in a transitional status.
    A deleted image or one that is no longer visible answers 404, and the row removes itself."""

    def get(self, request, pk):
        image = image_get(tenant=request.tenant, membership=request.membership, pk=pk)
        decorate_rows(request, [image])
        # Links in the row lead back to the page the row sits in (htmx sends its address).
        fallback = _list_url("iso" if image.kind == Image.Kind.ISO else "self")
        back = request.htmx.current_url_abs_path if request.htmx else None
        if not back or not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = fallback
        return HttpResponse(render_row(image, row_context(request, back)))


class ImageExportView(TenantRequiredMixin, View):
    """The Excel file of every image the list would show with these filters (all pages)."""

    def get(self, request):
        filterset = _filtered(request, _tab_of(request))
        return export_response(queryset=filterset.qs, tenant=request.tenant)


class BatchDeleteView(TenantRequiredMixin, View):
    """Two steps, as admin's bulk actions: GET shows the chosen rows in a confirmation, POST deletes them
    in one request and reports each image (deleted, or skipped and why)."""

    def _selection(self, request, data):
        form = BatchSelectionForm(data)
        if not form.is_valid():
            return form, None, None
        tab = _tab_of(request)
        if form.cleaned_data["all"]:
            # "All matching the filter": the filters travel with the request, as the list had them.
            scope = _filtered(request, tab, data=data).qs
            return form, scope, None
        scope = images_visible(tenant=request.tenant, membership=request.membership)
        return form, scope, form.cleaned_data["ids"]

    def _context(self, request, data, form, scope, ids):
        tab = _tab_of(request)
        context = {
            "form": form,
            "tab": tab,
            "list_url": _list_url(tab),
            "next": _safe_next(request, _list_url(tab)),
            "filter_items": [(k, v) for k in data for v in data.getlist(k) if k in ImageFilter.base_filters],
            "deletion": deletion_wording(request.tenant),
        }
        if scope is None:
            return context
        if ids is None:
            rows = list(scope[:CONFIRM_LIST_MAX])
            total = scope.count() if len(rows) == CONFIRM_LIST_MAX else len(rows)
        else:
            found = scope.filter(pk__in=[i for i in ids if is_uuid(i)]).in_bulk()
            by_id = {str(pk): image for pk, image in found.items()}
            rows = [by_id[i] for i in dict.fromkeys(ids) if i in by_id][:CONFIRM_LIST_MAX]
            total = len(ids)
        for image in rows:
            image.actions = row_actions(request, image)
        context.update(
            {"rows": rows, "total": total, "more": max(total - len(rows), 0), "ids": ids, "all": ids is None}
        )
        return context

    def get(self, request):
        require_manage(request)
        form, scope, ids = self._selection(request, request.GET)
        context = self._context(request, request.GET, form, scope, ids)
        template = "images/list/batch_confirm.html"
        if request.htmx:
            template = "images/list/batch_confirm_dialog.html"
        return render(request, template, context, status=200 if scope is not None else 400)

    def post(self, request):
        require_manage(request)
        form, scope, ids = self._selection(request, request.POST)
        if scope is None:
            context = self._context(request, request.POST, form, scope, ids)
            return render(request, "images/list/batch_confirm.html", context, status=400)
        result = image_batch_delete(
            tenant=request.tenant, scope=scope, image_ids=ids, actor=request.user, request=request
        )
        deleted, skipped = result.deleted, result.skipped
        if request.htmx:
            response = render(
                request,
                "images/list/batch_result.html",
                {"result": result, "deleted": deleted, "skipped": skipped},
            )
            response["HX-Trigger"] = "images-changed"
            return response
        if deleted and deletion_wording(request.tenant)["immediate"]:
            messages.success(
                request,
                ngettext(
                    "%(count)d image is being destroyed.",
                    "%(count)d images are being destroyed.",
                    len(deleted),
                )
                % {"count": len(deleted)},
            )
        elif deleted:
            messages.success(
                request,
                ngettext(
                    "%(count)d image moved to the recycle bin.",
                    "%(count)d images moved to the recycle bin.",
                    len(deleted),
                )
                % {"count": len(deleted)},
            )
        if skipped:
            shown = "; ".join(f"{item.name or item.id}: {item.reason}" for item in skipped[:20])
            more = len(skipped) - 20
            messages.warning(
                request,
                ngettext(
                    "%(count)d image was not deleted: %(list)s",
                    "%(count)d images were not deleted: %(list)s",
                    len(skipped),
                )
                % {"count": len(skipped), "list": shown + (f" (+{more})" if more > 0 else "")},
            )
        return HttpResponseRedirect(_safe_next(request, _list_url(_tab_of(request))))


class CustomImageGuideView(TenantRequiredMixin, View):
    """How to build an image and convert it with qemu-img before importing it (seed 000 4.1 and 4.3)."""

    def get(self, request):
        return render(request, "images/list/guide.html")


def require_own_manageable(request, image: Image) -> None:
    """A change needs the manage permission and an image of this tenant (a shared one is read-only)."""
    from ..policy import can_change

    if not can_change(request, image):
        require_manage(request)
        raise PermissionDenied(
            _("This image is shared with your tenant by another one and is read-only here.")
        )
