from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from tenants.oplog import word
from tenants.services import log

from ..models import Image


class TransitionNotAllowed(Exception):
    """The image is not in a status from which this change is allowed; the message says which it is in."""

    def __init__(self, image: Image, to: str):
        self.image = image
        self.to = to
        super().__init__(
            _("“%(name)s” is %(status)s, so it cannot become %(to)s.")
            % {
                "name": image.name,
                "status": image.get_status_display(),
                "to": Image.Status(to).label,
            }
        )


def status_word(status: str) -> dict:
    """An image status for the operation log, worded when shown."""
    return word(Image.Status(status).label, "Image status")


def _status_change(message: str, before: str, to: str) -> dict | None:
    return None if message else {"before": status_word(before), "after": status_word(to)}


def image_transition(
    *,
    image_id: UUID | str,
    to: str,
    action: str,
    allowed_from: Iterable[str] | None = None,
    actor=None,
    request=None,
    message: str = "",
    result: str = "success",
    changes: dict | None = None,
    after_commit: Callable[[], None] | None = None,
    message_code: str = "",
    params: dict | None = None,
) -> Image:
    """Move one image to status `to`: check the move is allowed, lock the row, apply `changes`, log it,
    and run `after_commit` (enqueue follow-up jobs) once the transaction commits.

    `allowed_from` narrows the statuses this caller accepts (e.g. cancel only from `uploading`);
    the TRANSITIONS table on the model always applies. Raises TransitionNotAllowed.
    """
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image_id)
        allowed = Image.TRANSITIONS.get(image.status, set())
        if to not in allowed or (allowed_from is not None and image.status not in set(allowed_from)):
            raise TransitionNotAllowed(image, to)
        before = image.status
        image.status = to
        update_fields = {"status", "updated_at"}
        for field, value in (changes or {}).items():
            setattr(image, field, value)
            update_fields.add(field)
        image.save(update_fields=sorted(update_fields))
        log(
            action=action,
            tenant=image.tenant,
            actor=actor,
            target=image,
            result=result,
            message=message,
            # Without a message of its own, the change of status, worded for each reader.
            message_code=message_code or ("" if message else gettext_noop("%(before)s → %(after)s")),
            params=params if message_code else _status_change(message, before, to),
            request=request,
        )
        if after_commit is not None:
            transaction.on_commit(after_commit)
    return image


def images_transition_bulk(
    *,
    tenant,
    image_ids: Iterable,
    allowed_from: Iterable[str],
    path: Sequence[str],
    now,
    changes: dict | None = None,
) -> list:
    """Move many images of one tenant along `path` (e.g. deleting, then deleted) with one locking
    SELECT and one UPDATE a step, checked against the same TRANSITIONS table as `image_transition`.

    Only rows still in `allowed_from` move; returns their ids. `changes` apply with the last step.
    The caller holds the transaction and writes the OperationLog rows (in bulk).
    """
    allowed_from = list(allowed_from)
    for start in allowed_from:
        for before, after in zip([start, *path[:-1]], path, strict=True):
            if after not in Image.TRANSITIONS.get(before, set()):
                raise RuntimeError(f"Image.TRANSITIONS no longer allows {before} → {after}")
    locked = list(
        Image.objects.select_for_update()
        .filter(pk__in=list(image_ids), tenant=tenant, status__in=allowed_from)
        .values_list("pk", flat=True)
    )
    for step, status in enumerate(path):
        rows = Image.objects.filter(pk__in=locked)
        if step:
            rows = rows.filter(status=path[step - 1])
        extra = (changes or {}) if step == len(path) - 1 else {}
        rows.update(status=status, updated_at=now, **extra)
    return locked
