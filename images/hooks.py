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


def register_detail_section(fn: Callable[..., str]) -> Callable[..., str]:
    if fn not in _detail_sections:
        _detail_sections.append(fn)
    return fn


def detail_sections(*, request, image) -> list[str]:
    return [html for fn in list(_detail_sections) if (html := fn(request=request, image=image))]
