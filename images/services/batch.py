"""What batch actions on images share (delete here; restore and expunge in the recycle bin): the ids asked
for, the rows they name within the user's scope, and a result per image in the order asked for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from django.db.models import QuerySet

from ..models import Image

# Ids per `pk IN (...)` query: under every database's limit on query parameters.
BATCH_CHUNK = 500


@dataclass
class BatchItem:
    id: UUID | str
    name: str
    done: bool
    reason: str = ""

    @property
    def deleted(self) -> bool:  # the batch delete's word for `done`
        return self.done


@dataclass
class BatchResult:
    items: list[BatchItem] = field(default_factory=list)

    @property
    def done(self) -> list[BatchItem]:
        return [item for item in self.items if item.done]

    deleted = done

    @property
    def skipped(self) -> list[BatchItem]:
        return [item for item in self.items if not item.done]


def is_uuid(value) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def wanted_ids(image_ids: Iterable | None) -> list[str] | None:
    """The ids asked for, normalised and without repeats (None: everything the scope holds)."""
    if image_ids is None:
        return None
    wanted = []
    for raw in image_ids:
        try:
            wanted.append(str(UUID(str(raw))))
        except ValueError:
            wanted.append(str(raw))
    return list(dict.fromkeys(wanted))


def batch_rows(scope: QuerySet[Image], wanted: list[str] | None, fields: Iterable[str]) -> dict[str, dict]:
    """The rows of `scope` that `wanted` names (all of them for None), as dicts of `fields` by id."""
    base = scope.order_by().select_related(None)
    rows: dict[str, dict] = {}
    if wanted is None:
        for row in base.values(*fields).iterator(chunk_size=2000):
            rows[str(row["pk"])] = row
        return rows
    valid = [value for value in wanted if is_uuid(value)]
    for start in range(0, len(valid), BATCH_CHUNK):
        for row in base.filter(pk__in=valid[start : start + BATCH_CHUNK]).values(*fields):
            rows[str(row["pk"])] = row
    return rows
