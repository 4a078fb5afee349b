"""The one writer of `Image.status`.

`image_transition` moves one image and `image_transition_many` many; both run the same steps in one
transaction: lock the rows (`select_for_update`), check each move against `Image.TRANSITIONS` (and the
caller's `allowed_from`), write the status and the caller's `changes`, write one OperationLog row per
image, and run the follow-up (`after_commit`, usually an enqueue) only once the transaction commits.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from imageconsole.core.words import words_of
from tenants.oplog import joined, word
from tenants.services import log_many

from ..models import Image

# Rows per locking SELECT / UPDATE: under every database's limit on query parameters.
CHUNK = 500


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


STATUS_PATH = gettext_noop("%(path)s")


def _path_words(statuses) -> dict:
    return joined([status_word(status) for status in statuses], " → ")


def transition_allowed(before: str, to: str, *, via: Sequence[str] = ()) -> bool:
    """Whether `before` → (each of `via`) → `to` is a path of the TRANSITIONS table."""
    path = [before, *via, to]
    return all(b in Image.TRANSITIONS.get(a, set()) for a, b in zip(path, path[1:], strict=False))


@dataclass
class TransitionResult:
    """What `image_transition_many` did: the images moved (as they are now) and those left alone (as
    they were, with their status at the time of the lock)."""

    moved: list[Image] = field(default_factory=list)
    refused: list[Image] = field(default_factory=list)

    @property
    def moved_ids(self) -> list:
        return [image.pk for image in self.moved]


def image_transition_many(
    *,
    image_ids: Iterable[UUID | str],
    to: str,
    action: str,
    via: Sequence[str] = (),
    allowed_from: Iterable[str] | None = None,
    tenant=None,
    actor=None,
    request=None,
    message: str = "",
    result: str = "success",
    changes: dict | None = None,
    after_commit: Callable[[list], None] | None = None,
    now=None,
    write_log: bool = True,
    message_code: str = "",
    params: dict | None = None,
) -> TransitionResult:
    """Move many images to status `to`, each only if TRANSITIONS allows it (through the statuses of `via`,
    e.g. `deleting` on the way to `deleted`) and it is in `allowed_from` when given; the others are
    left alone and returned as refused. `tenant` limits the rows to one tenant's (others are neither
    moved nor reported). One OperationLog row per moved image (`message` defaults to its path,
    "available → deleting → deleted").
    `after_commit(moved_ids)` runs once the transaction commits, and only if something moved.
    """
    allowed_from = None if allowed_from is None else {str(status) for status in allowed_from}
    now = now or timezone.now()
    update = {"status": to, "updated_at": now, **(changes or {})}
    if "error" in update:  # the error's words, to show it in each reader's language
        update["error_words"] = words_of(update["error"])
    ids = list(dict.fromkeys(image_ids))
    outcome = TransitionResult()
    with transaction.atomic():
        for start in range(0, len(ids), CHUNK):
            rows = Image.objects.select_for_update(of=("self",)).filter(pk__in=ids[start : start + CHUNK])
            if tenant is not None:
                rows = rows.filter(tenant=tenant)
            movable = []
            for image in rows.order_by("pk"):
                if (allowed_from is None or image.status in allowed_from) and transition_allowed(
                    image.status, to, via=via
                ):
                    movable.append(image)
                else:
                    outcome.refused.append(image)
            if not movable:
                continue
            Image.objects.filter(pk__in=[image.pk for image in movable]).update(**update)
            entries = []
            for image in movable:
                entry = {"tenant_id": image.tenant_id, "target": image, "message": message}
                if message_code:
                    entry.update(message_code=message_code, params=params)
                elif not message:
                    # The path of statuses ("Available → Deleting → Deleted"), worded for each reader.
                    entry.update(
                        message_code=STATUS_PATH, params={"path": _path_words([image.status, *via, to])}
                    )
                entries.append(entry)
                for name, value in update.items():
                    setattr(image, name, value)
            if write_log:
                log_many(action=action, entries=entries, actor=actor, request=request, result=result)
            outcome.moved.extend(movable)
        if outcome.moved and after_commit is not None:
            moved_ids = outcome.moved_ids
            transaction.on_commit(lambda: after_commit(moved_ids))
    return outcome


def image_transition(
    *,
    image_id: UUID | str,
    to: str,
    action: str,
    via: Sequence[str] = (),
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
    """Move one image to status `to`: `image_transition_many` for one id, which raises
    TransitionNotAllowed (or Image.DoesNotExist) instead of reporting the image as refused.
    `after_commit` takes no argument here."""
    with transaction.atomic():
        outcome = image_transition_many(
            image_ids=[image_id],
            to=to,
            action=action,
            via=via,
            allowed_from=allowed_from,
            actor=actor,
            request=request,
            message=message,
            message_code=message_code,
            params=params,
            result=result,
            changes=changes,
            after_commit=None if after_commit is None else (lambda _ids: after_commit()),
        )
        if outcome.refused:
            raise TransitionNotAllowed(outcome.refused[0], to)
        if not outcome.moved:
            raise Image.DoesNotExist(f"No image {image_id}")
    return outcome.moved[0]


def images_transition_bulk(
    *,
    tenant,
    image_ids: Iterable,
    allowed_from: Iterable[str],
    path: Sequence[str],
    now,
    changes: dict | None = None,
    action: str = "",
    actor=None,
    request=None,
) -> list:
    """The older bulk form, kept for its callers: `image_transition_many` along `path` (e.g. deleting,
    then deleted), returning the ids moved. Logs one row per image under `action` when one is given;
    without one the caller writes the log, as before."""
    outcome = image_transition_many(
        image_ids=image_ids,
        to=path[-1],
        via=path[:-1],
        allowed_from=allowed_from,
        tenant=tenant,
        action=action or "image.transition",
        actor=actor,
        request=request,
        changes=changes,
        now=now,
        write_log=bool(action),
    )
    return outcome.moved_ids
