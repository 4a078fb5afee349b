"""One row of the image list as HTML, for the list page and the row that polls itself.

Written in Python rather than as a template: a page draws twenty to a hundred rows, and Django's
template engine spent about 0.6 ms on each, most of a page's time at 100,000 images. Here the row's
fixed words are translated once per language (`_words`), every value goes through `html.escape`, and a
row costs a few dozen microseconds.

    render_row(image, shared)   # shared: views.image_list.row_context (next, back path, CSRF field)
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from .models import Image

STATUS_BADGE = {Image.Status.AVAILABLE: "text-bg-success", Image.Status.FAILED: "text-bg-danger"}


@lru_cache(maxsize=16)
def _words(language: str) -> dict[str, str]:
    """The row's fixed words in `language` (the active one), escaped, once per process."""
    words = {
        "edit_title": _("Edit name and remarks"),
        "edit": _("Edit"),
        "shared_title": _("Shared with your tenant; read-only here."),
        "disabled": _("Disabled"),
        "encrypted": _("Encrypted"),
        "progress": _("Progress"),
        "yes": _("Yes"),
        "no": _("No"),
        "hot_upgrade": _("hot upgrade"),
        "create_vm": _("Create VM"),
        "more": _("More"),
        "download": _("Download"),
        "export": _("Export"),
        "cancel": _("Cancel upload"),
        "confirm_cancel": _(
            "Cancel this import? What was received so far is discarded; the image stays as “Cancelled” "
            "until you delete it."
        ),
        "labels": _("Labels"),
        "sharing": _("Sharing mode"),
        "disable": _("Disable"),
        "enable": _("Enable"),
        "not_deletable": _("Only available or failed images can be deleted."),
        "read_only": _("Read-only"),
        "copy_id": _("Copy the resource ID"),
    }
    return {key: escape(str(value)) for key, value in words.items()}


def _e(value) -> str:
    return escape(str(value))


def _name_cell(image: Image, w: dict, next_q: str) -> str:
    """One line: the name (remarks on hover), the edit pencil, the short ID with a copy button, badges."""
    actions, urls = image.actions, image.urls
    name = _e(image.name)
    # Remarks and labels on hover: the row stays one line.
    hover = [image.name, image.description, ", ".join(image.labels or ())]
    title = _e("\n".join(part for part in hover if part))
    if urls["detail"]:
        html = (
            f'<a href="{_e(urls["detail"])}" class="fw-semibold cell-name" title="{title}" '
            f'data-testid="image-name">{name}</a>'
        )
    else:
        html = f'<span class="fw-semibold cell-name" title="{title}" data-testid="image-name">{name}</span>'
    if actions["change"]:
        html += (
            f'<a href="{_e(urls["edit"])}?next={next_q}" class="edit-link" title="{w["edit_title"]}" '
            f'aria-label="{w["edit_title"]}" data-testid="row-edit"><span aria-hidden="true">✎</span></a>'
        )
    pk = str(image.pk)
    html += (
        f'<span class="short-id font-monospace" title="{pk}" data-testid="image-id" data-full-id="{pk}">'
        f"{pk[:8]}</span>"
        f'<button type="button" class="btn btn-link p-0 copy-button" data-copy="{pk}" title="{w["copy_id"]}" '
        f'aria-label="{w["copy_id"]}" data-testid="copy-id"><span class="copy-icon" aria-hidden="true"></span>'
        "</button>"
    )
    if not actions["own"]:
        shared_by = _e(_("Shared by %(tenant)s") % {"tenant": image.tenant.name})
        html += (
            f' <span class="badge text-bg-info" data-testid="shared-badge" title="{w["shared_title"]}">'
            f"{shared_by}</span>"
        )
    if image.encrypted:
        html += (
            f' <span class="badge text-bg-light border" data-testid="encrypted-badge">{w["encrypted"]}</span>'
        )
    if not image.enabled:
        html += f' <span class="badge text-bg-secondary" data-testid="disabled-badge">{w["disabled"]}</span>'
    if image.sharing != Image.Sharing.PRIVATE and actions["own"]:
        html += f' <span class="badge text-bg-light border">{_e(image.get_sharing_display())}</span>'
    return html


def _status_cell(image: Image, w: dict) -> str:
    badge = "text-bg-secondary" if image.is_cancelled else STATUS_BADGE.get(image.status, "text-bg-warning")
    failed = image.status == Image.Status.FAILED and image.error and not image.is_cancelled
    title = f' title="{_e(image.error_text)}"' if failed else ""
    html = f'<span class="badge {badge}"{title}>{_e(image.status_label())}</span>'
    if image.is_transitional:
        stage = f"{_e(image.get_stage_display())} · " if image.stage else ""
        rate = ""
        if image.bytes_per_second:
            speed = _("%(speed)s/s") % {"speed": filesizeformat(image.bytes_per_second)}
            rate = f' · <span data-testid="image-rate">{_e(speed)}</span>'
        html += (
            f' <span class="text-muted stage-text" data-testid="image-stage" title="{stage}{image.progress}%">'
            f"{stage}{image.progress}%{rate}</span>"
        )
    elif failed:
        html += f' <span class="small text-danger cell-error" data-testid="image-error"{title}>{_e(image.error_text)}</span>'
    return html


def _features_cell(image: Image, w: dict) -> str:
    badges = []
    if image.hot_upgrade:
        badges.append(w["hot_upgrade"])
    if image.cloud_init:
        badges.append("cloud-init")
    if image.qemu_ga:
        badges.append("qemu-ga")
    if not badges:
        return '<span class="text-muted">—</span>'
    text = " · ".join(badges)
    return f'<span class="cell-truncate" title="{text}">{text}</span>'


def _delete_label(shared) -> str:
    deletion = shared.get("deletion")
    return deletion["label"] if deletion else _("Move to recycle bin")


def _operations_cell(image: Image, w: dict, shared) -> str:
    actions, urls = image.actions, image.urls
    next_q = _e(shared["next_q"])
    html = ""
    if actions["use"] and urls["create_vm"]:
        html += (
            f'<a class="btn btn-sm btn-outline-primary" href="{_e(urls["create_vm"])}?image={image.pk}">'
            f"{w['create_vm']}</a>"
        )
    if actions["change"]:
        back = f'{shared["csrf_input"]}<input type="hidden" name="next" value="{_e(shared["back_path"])}">'
        items = []
        if actions["download"] and urls["download"]:
            items.append(_dialog_link(urls["download"], w["download"], "dropdown-item", "row-download"))
        if actions["export"] and urls["export"]:
            items.append(_dialog_link(urls["export"], w["export"], "dropdown-item", "row-export"))
        if actions["cancel"] and urls["cancel"]:
            items.append(
                f'<form method="post" action="{_e(urls["cancel"])}" data-confirm="{w["confirm_cancel"]}" '
                f'data-confirm-ok="{w["cancel"]}">{back}'
                f'<button class="dropdown-item" data-testid="row-cancel">{w["cancel"]}</button></form>'
            )
        items.append(
            f'<a class="dropdown-item" href="{_e(urls["edit"])}?next={next_q}">{w["edit_title"]}</a>'
        )
        items.append(
            f'<a class="dropdown-item" href="{_e(urls["labels"])}?next={next_q}" data-testid="row-labels">'
            f"{w['labels']}</a>"
        )
        items.append(
            f'<a class="dropdown-item" href="{_e(urls["sharing"])}?next={next_q}" data-testid="row-sharing">'
            f"{w['sharing']}</a>"
        )
        if image.enabled:
            toggle = '<input type="hidden" name="enabled" value="0">'
            toggle += f'<button class="dropdown-item" data-testid="row-disable">{w["disable"]}</button>'
        else:
            toggle = '<input type="hidden" name="enabled" value="1">'
            toggle += f'<button class="dropdown-item" data-testid="row-enable">{w["enable"]}</button>'
        items.append(f'<form method="post" action="{_e(urls["enable"])}">{back}{toggle}</form>')
        items.append('<hr class="dropdown-divider">')
        if actions["delete"]:
            items.append(
                f'<a class="dropdown-item text-danger" href="{_e(urls["delete"])}?next={next_q}" '
                f'data-testid="row-delete">{_e(_delete_label(shared))}</a>'
            )
        else:
            items.append(f'<span class="dropdown-item-text small text-muted">{w["not_deletable"]}</span>')
        menu = "".join(f"<li>{item}</li>" for item in items)
        # A fixed-position menu: the scrolling table would clip an absolute one.
        html += (
            '<div class="dropdown d-inline-block"><button class="btn btn-sm btn-outline-secondary dropdown-toggle" '
            'type="button" data-bs-toggle="dropdown" data-bs-popper-config=\'{"strategy":"fixed"}\' '
            f'aria-expanded="false" data-testid="row-actions">{w["more"]}</button>'
            f'<ul class="dropdown-menu dropdown-menu-end">{menu}</ul></div>'
        )
    elif not actions["own"]:
        html += f'<span class="small text-muted">{w["read_only"]}</span>'
    elif actions["download"] and urls["download"]:
        # A view-only account may download: the one action it has is a button of its own.
        html += " " + _dialog_link(
            urls["download"], w["download"], "btn btn-sm btn-outline-secondary", "row-download"
        )
    return html


def _dialog_link(url: str, text: str, css: str, testid: str) -> str:
    """A link that opens its page in the list's download dialog (htmx), or as a page without JavaScript."""
    url = _e(url)
    return (
        f'<a class="{css}" href="{url}" hx-get="{url}" hx-target="#download-dialog-content" hx-swap="innerHTML" '
        f'hx-push-url="false" data-testid="{testid}">{text}</a>'
    )


def os_display(image: Image) -> str:
    """ "Ubuntu 24.04 x86_64"; a version that already names its platform ("Windows Server 2022") is not
    preceded by it again."""
    platform, version = image.platform, image.os_version
    if platform and version.lower().startswith(platform.lower()):
        platform = ""
    return " ".join(part for part in (platform, version, image.architecture) if part)


def render_row(image: Image, shared) -> SafeString:
    """The <tr> of `image`, decorated by views.image_list.decorate_rows with `actions` and `urls`.
    `shared` maps next_q (the quoted return address), back_path, csrf_input (safe HTML) and
    show_operations (False: the page has no operations column, e.g. for a view-only account)."""
    w = _words(get_language() or "")
    actions = image.actions
    next_q = _e(shared["next_q"])
    attributes = f' data-poll-url="{_e(image.urls["row"])}"' if image.is_transitional else ""
    if not actions["own"]:
        attributes += ' class="table-secondary"'
    select = ""
    if actions["change"]:
        label = _e(_("Select %(name)s") % {"name": image.name})
        select = (
            f'<input type="checkbox" class="form-check-input" name="ids" value="{image.pk}" form="image-batch-form" '
            f'data-row-select aria-label="{label}" data-testid="row-select">'
        )
    os_text = _e(os_display(image))
    size = _e(filesizeformat(image.size)) if image.size else "—"
    created = _e(date_format(timezone.localtime(image.created_at), "SHORT_DATETIME_FORMAT"))
    group = _e(image.project_group.name) if image.project_group_id and image.project_group.name else "—"
    version = (
        f"{image.status}|{image.stage}|{image.progress}|{image.enabled}|{image.updated_at.timestamp():.6f}"
    )
    return mark_safe(  # noqa: S308 - every value above is escaped
        f'<tr id="image-row-{image.pk}" data-testid="image-row" data-image-id="{image.pk}" '
        f'data-status="{_e(image.status)}" data-row-version="{_e(version)}"{attributes}>'
        f'<td class="select-col">{select}</td>'
        f'<td data-column="name"><div class="name-line">{_name_cell(image, w, next_q)}</div></td>'
        f'<td data-column="status" data-testid="image-status"><div class="status-line">{_status_cell(image, w)}</div></td>'
        f'<td data-column="encrypted">{w["yes"] if image.encrypted else w["no"]}</td>'
        f'<td data-column="features">{_features_cell(image, w)}</td>'
        f'<td data-column="os_type">{_e(image.get_os_type_display())}</td>'
        f'<td data-column="os"><span class="cell-truncate" title="{os_text}">{os_text}</span></td>'
        f'<td data-column="project_group"><span class="cell-truncate" title="{group}">{group}</span></td>'
        f'<td data-column="disk_format">{_e(image.disk_format)}</td>'
        f'<td data-column="size" data-bytes="{image.size}">{size}</td>'
        f'<td data-column="created">{created}</td>'
        + (
            f'<td data-column="operations" class="ops-col">{_operations_cell(image, w, shared)}</td>'
            if shared.get("show_operations", True)
            else ""
        )
        + "</tr>"
    )
