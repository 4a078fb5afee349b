"""Hooks through which apps above `images` (recyclebin, compute, openstack) and the parts of `images`
built independently of each other take part in an image's life without being imported by it.

`before_expunge`: callables `fn(*, image_id, tenant_id) -> None` run by the expunge service (recycle
bin) inside the expunge job, before the image's replicas are removed and its row deleted. Download
links and exports register here to remove their own data. They must be idempotent: an expunge that
crashed half-way runs them again.

`detail_section`: callables `fn(*, request, image) -> str` (HTML, already escaped: a rendered template)
whose output the image's detail page shows below its properties (compute: VMs using the image, the
boot check). Only for the tenant's own images.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

_before_expunge: list[Callable[..., None]] = []
_detail_sections: list[Callable[..., str]] = []


def register_before_expunge(fn: Callable[..., None]) -> Callable[..., None]:
    if fn not in _before_expunge:
        _before_expunge.append(fn)
    return fn


def run_before_expunge(*, image_id: UUID, tenant_id) -> None:
    for fn in list(_before_expunge):
        fn(image_id=image_id, tenant_id=tenant_id)


# --- deletion policy ---------------------------------------------------------------------------------
# The recycle bin (an app above images) decides what a delete does: it registers `deletion_plan` and
# `after_delete` in its AppConfig.ready. Without it a deleted image stays in the bin until destroyed.


@dataclass(frozen=True)
class DeletionPlan:
    """What deleting an image of one tenant does now: expunge at once (policy "immediate"), or move it to
    the recycle bin until `purge_after` (None: kept until destroyed)."""

    expunge_now: bool = False
    purge_after: datetime | None = None


_deletion_plan: list[Callable[..., DeletionPlan]] = []
_after_delete: list[Callable[..., None]] = []
_reconcilers: list[Callable[..., dict[str, list[str]]]] = []


def register_deletion_plan(fn: Callable[..., DeletionPlan]) -> Callable[..., DeletionPlan]:
    """`fn(*, tenant) -> DeletionPlan`; the last one registered answers."""
    if fn not in _deletion_plan:
        _deletion_plan.append(fn)
    return fn


def deletion_plan(*, tenant) -> DeletionPlan:
    if not _deletion_plan:
        return DeletionPlan()
    return _deletion_plan[-1](tenant=tenant)


def register_after_delete(fn: Callable[..., None]) -> Callable[..., None]:
    """`fn(*, image_ids, tenant_id, expunge_now)`, run when the transaction that deleted the images
    commits: schedules their expiry, or starts their expunge."""
    if fn not in _after_delete:
        _after_delete.append(fn)
    return fn


def run_after_delete(*, image_ids: list[UUID], tenant_id, expunge_now: bool) -> None:
    for fn in list(_after_delete):
        fn(image_ids=image_ids, tenant_id=tenant_id, expunge_now=expunge_now)


def register_reconciler(fn: Callable[..., dict[str, list[str]]]) -> Callable[..., dict[str, list[str]]]:
    """`fn() -> {what was done: [ids]}`, run by the images reconciler (`manage.py reconcile` and every
    minute): the recycle bin re-enqueues expunges whose worker was lost."""
    if fn not in _reconcilers:
        _reconcilers.append(fn)
    return fn


def run_reconcilers() -> dict[str, list[str]]:
    done: dict[str, list[str]] = {}
    for fn in list(_reconcilers):
        for label, ids in fn().items():
            done.setdefault(label, []).extend(ids)
    return done


def register_detail_section(fn: Callable[..., str]) -> Callable[..., str]:
    if fn not in _detail_sections:
        _detail_sections.append(fn)
    return fn


def detail_sections(*, request, image) -> list[str]:
    return [html for fn in list(_detail_sections) if (html := fn(request=request, image=image))]
