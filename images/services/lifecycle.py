"""Changes to an image after its import: name and remarks, enabled, sharing, labels, and deletion.

Deletion moves `available` or `failed` images through `deleting` to `deleted` (the recycle bin), with
who and when. The recycle-bin work extends `image_delete` / `image_batch_delete` with its policy
(immediate expunge, retention): `_after_delete` is the one place it hooks in. Nothing is erased here.
"""

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from tenants.models import OperationLog, Tenant
from tenants.oplog import english, word
from tenants.services import client_ip, log

from ..catalog import NAME_MAX_LENGTH, validate_image_name  # noqa: F401  (one name rule for import and edit)
from ..models import Image
from .transitions import TransitionNotAllowed, image_transition, images_transition_bulk, status_word

BATCH_DELETED = gettext_noop("%(before)s → %(after)s (batch delete)")


def deleted_params(before: str) -> dict:
    return {"before": status_word(before), "after": status_word(Image.Status.DELETED)}

DESCRIPTION_MAX_LENGTH = 1024
LABEL_MAX_LENGTH = 64
LABELS_MAX = 20
DELETABLE = frozenset({Image.Status.AVAILABLE, Image.Status.FAILED})
# Rows per UPDATE / INSERT in batch work: under every database's limit on query parameters.
BATCH_CHUNK = 500


def clean_labels(labels: Iterable[str]) -> list[str]:
    """Labels as stored: stripped, without duplicates, in the order given."""
    if isinstance(labels, str):
        raise ValidationError(_("Labels must be a list of strings."), code="labels_type")
    cleaned: list[str] = []
    for label in labels:
        if not isinstance(label, str):
            raise ValidationError(_("Labels must be a list of strings."), code="labels_type")
        label = label.strip()
        if not label:
            continue
        if len(label) > LABEL_MAX_LENGTH:
            raise ValidationError(
                _("The label “%(label)s…” is too long: at most %(max)d characters.")
                % {"label": label[:20], "max": LABEL_MAX_LENGTH},
                code="label_too_long",
            )
        if any(unicodedata.category(ch)[0] == "C" for ch in label):
            raise ValidationError(_("Labels cannot contain control characters."), code="label_characters")
        if label not in cleaned:
            cleaned.append(label)
    if len(cleaned) > LABELS_MAX:
        raise ValidationError(
            _("An image can have at most %(max)d labels.") % {"max": LABELS_MAX}, code="labels_too_many"
        )
    return cleaned


@transaction.atomic
def image_update(
    *,
    image: Image,
    name: str | None = None,
    description: str | None = None,
    labels: Iterable[str] | None = None,
    actor=None,
    request=None,
) -> Image:
    """Edit name, remarks and labels, in any status (seed 000 4.6). Arguments left None stay as they are."""
    image = Image.objects.select_for_update().get(pk=image.pk)
    errors: dict[str, list[ValidationError]] = {}
    changed: list[str] = []
    if name is not None and name != image.name:
        try:
            validate_image_name(name)
        except ValidationError as exc:
            errors["name"] = exc.error_list
        changed.append("name")
    if description is not None and description != image.description:
        if len(description) > DESCRIPTION_MAX_LENGTH:
            errors["description"] = [
                ValidationError(
                    _("The remarks are %(length)d characters long; at most %(max)d are allowed.")
                    % {"length": len(description), "max": DESCRIPTION_MAX_LENGTH},
                    code="description_too_long",
                )
            ]
        changed.append("description")
    if labels is not None:
        try:
            cleaned = clean_labels(labels)
        except ValidationError as exc:
            errors["labels"] = exc.error_list
        else:
            if cleaned != list(image.labels or []):
                labels = cleaned
                changed.append("labels")
    if errors:
        raise ValidationError(errors)
    if not changed:
        return image
    before = {f: getattr(image, f) for f in changed}
    if "name" in changed:
        image.name = name
    if "description" in changed:
        image.description = description
    if "labels" in changed:
        image.labels = labels
    image.save(update_fields=[*changed, "updated_at"])
    log(
        action="image.update",
        tenant=image.tenant,
        actor=actor,
        target=image,
        message_code=gettext_noop("Changed %(fields)s: %(values)s"),
        params={
            "fields": [word(Image._meta.get_field(f).verbose_name) for f in changed],
            "values": "; ".join(f"{before[f]!r} → {getattr(image, f)!r}" for f in changed),
        },
        request=request,
    )
    return image


@transaction.atomic
def image_set_enabled(*, image: Image, enabled: bool, actor=None, request=None) -> Image:
    """A disabled image cannot be used to create a VM; VMs made from it before are not affected."""
    updated = (
        Image.objects.filter(pk=image.pk)
        .exclude(enabled=enabled)
        .update(enabled=enabled, updated_at=timezone.now())
    )
    image.refresh_from_db()
    if updated:
        log(
            action="image.enable" if enabled else "image.disable",
            tenant=image.tenant,
            actor=actor,
            target=image,
            request=request,
        )
    return image


@transaction.atomic
def image_set_sharing(
    *, image: Image, sharing: str, tenants: Iterable[Tenant] = (), actor=None, request=None
) -> Image:
    """Seed 002's sharing modes: not shared, shared with chosen tenants, or (administrators) globally."""
    if sharing not in Image.Sharing.values:
        raise ValidationError(
            {"sharing": _("Choose one of: %(modes)s.") % {"modes": ", ".join(Image.Sharing.values)}}
        )
    tenants = [t for t in tenants if t.pk != image.tenant_id]
    if sharing == Image.Sharing.GLOBAL and not (actor is not None and actor.is_staff):
        raise ValidationError(
            {"sharing": _("Only a platform administrator can share an image globally.")},
            code="global_needs_admin",
        )
    if sharing == Image.Sharing.TENANTS and not tenants:
        raise ValidationError(
            {"shared_with": _("Choose at least one other tenant to share the image with.")},
            code="tenants_required",
        )
    image = Image.objects.select_for_update().get(pk=image.pk)
    image.sharing = sharing
    image.save(update_fields=["sharing", "updated_at"])
    image.shared_with.set(tenants if sharing == Image.Sharing.TENANTS else [])
    names = ", ".join(sorted(t.name for t in tenants)) if sharing == Image.Sharing.TENANTS else ""
    log(
        action="image.share",
        tenant=image.tenant,
        actor=actor,
        target=image,
        message_code=gettext_noop("%(mode)s%(tenants)s"),
        params={"mode": word(Image.Sharing(sharing).label, "Sharing mode"), "tenants": f": {names}" if names else ""},
        request=request,
    )
    return image


# --- deletion ---------------------------------------------------------------------------------------


class ImageInUse(ValidationError):
    """The image backs one or more VMs; the message names them."""


def vms_using_images(*, image_ids: Iterable[UUID]) -> dict[UUID, list[str]]:
    """Hook for the compute app: the names of the VMs that use each image, for images in use.

    Until `compute.VirtualMachine` exists nothing is in use. When it does, it is expected to have an
    `image` foreign key and a `name`; VMs it regards as gone should be excluded by its default manager.
    """
    try:
        vm_model = apps.get_model("compute", "VirtualMachine")
    except LookupError:
        return {}
    in_use: dict[UUID, list[str]] = {}
    ids = list(image_ids)
    for start in range(0, len(ids), BATCH_CHUNK):
        rows = vm_model.objects.filter(image_id__in=ids[start : start + BATCH_CHUNK]).values_list(
            "image_id", "name"
        )
        for image_id, vm_name in rows:
            in_use.setdefault(image_id, []).append(vm_name)
    return in_use


def _in_use_message(vm_names: list[str]) -> str:
    shown = ", ".join(sorted(vm_names)[:5]) + ("…" if len(vm_names) > 5 else "")
    return ngettext(
        "It is used by the VM %(vms)s; delete the VM first.",
        "It is used by %(count)d VMs (%(vms)s); delete them first.",
        len(vm_names),
    ) % {"vms": shown, "count": len(vm_names)}


def _status_message(status: str) -> str:
    return _("It is %(status)s; only available or failed images can be deleted.") % {
        "status": Image.Status(status).label
    }


def _after_delete(*, image_ids: list[UUID], actor, request) -> None:
    """Where the recycle bin's policy (immediate expunge, retention expiry) hooks in; nothing yet."""


def image_delete(*, image: Image, actor=None, request=None) -> Image:
    """Delete one image into the recycle bin: available or failed only, not while a VM uses it."""
    with transaction.atomic():
        locked = Image.objects.select_for_update().get(pk=image.pk)
        if locked.status not in DELETABLE:
            raise TransitionNotAllowed(locked, Image.Status.DELETING)
        vm_names = vms_using_images(image_ids=[locked.pk]).get(locked.pk)
        if vm_names:
            raise ImageInUse(
                _("“%(name)s” cannot be deleted. %(reason)s")
                % {"name": locked.name, "reason": _in_use_message(vm_names)},
                code="image_in_use",
            )
        image_transition(
            image_id=locked.pk,
            to=Image.Status.DELETING,
            allowed_from=DELETABLE,
            action="image.delete",
            actor=actor,
            request=request,
            result=OperationLog.Result.STARTED,
        )
        deleted = image_transition(
            image_id=locked.pk,
            to=Image.Status.DELETED,
            action="image.delete",
            actor=actor,
            request=request,
            changes={"deleted_at": timezone.now(), "deleted_by": actor if _is_user(actor) else None},
        )
        _after_delete(image_ids=[locked.pk], actor=actor, request=request)
    return deleted


def _is_user(actor) -> bool:
    return actor is not None and getattr(actor, "pk", None) is not None


@dataclass
class BatchItem:
    id: UUID | str
    name: str
    deleted: bool
    reason: str = ""


@dataclass
class BatchDeleteResult:
    items: list[BatchItem] = field(default_factory=list)

    @property
    def deleted(self) -> list[BatchItem]:
        return [item for item in self.items if item.deleted]

    @property
    def skipped(self) -> list[BatchItem]:
        return [item for item in self.items if not item.deleted]


def image_batch_delete(
    *,
    tenant: Tenant,
    scope: QuerySet[Image],
    image_ids: Iterable[UUID | str] | None = None,
    actor=None,
    request=None,
) -> BatchDeleteResult:
    """Delete many images in one transaction, in bulk, with a result per image.

    `scope` is what the user may see (the list's selector, possibly filtered); `image_ids` picks rows of
    it, or None for "all matching the filter". Images of other tenants shared with this one, images not
    available or failed, and images used by VMs are skipped with the reason; ids the user cannot see are
    reported as not found. Queries grow with the number of chunks of BATCH_CHUNK images, not per image.
    """
    wanted: list[str] | None = None
    if image_ids is not None:
        wanted = []
        for raw in image_ids:
            try:
                wanted.append(str(UUID(str(raw))))
            except ValueError:
                wanted.append(str(raw))
        wanted = list(dict.fromkeys(wanted))
    result = BatchDeleteResult()
    now = timezone.now()
    with transaction.atomic():
        rows: dict[str, dict] = {}
        fields = ("pk", "name", "status", "tenant_id")
        base = scope.order_by().select_related(None)
        if wanted is None:
            for row in base.values(*fields).iterator(chunk_size=2000):
                rows[str(row["pk"])] = row
        else:
            valid = [w for w in wanted if _is_uuid(w)]
            for start in range(0, len(valid), BATCH_CHUNK):
                for row in base.filter(pk__in=valid[start : start + BATCH_CHUNK]).values(*fields):
                    rows[str(row["pk"])] = row
        candidates = [
            row["pk"] for row in rows.values() if row["tenant_id"] == tenant.pk and row["status"] in DELETABLE
        ]
        in_use = vms_using_images(image_ids=candidates)
        deletable = [pk for pk in candidates if pk not in in_use]
        # Lock and move in chunks; the status condition makes a row that changed meanwhile drop out.
        actually_deleted: set = set()
        deleted_by = actor if _is_user(actor) else None
        for start in range(0, len(deletable), BATCH_CHUNK):
            actually_deleted.update(
                images_transition_bulk(
                    tenant=tenant,
                    image_ids=deletable[start : start + BATCH_CHUNK],
                    allowed_from=DELETABLE,
                    path=[Image.Status.DELETING, Image.Status.DELETED],
                    now=now,
                    changes={"stage": "", "deleted_at": now, "deleted_by": deleted_by},
                )
            )
        # A result per image, in the order asked for.
        order = wanted if wanted is not None else list(rows)
        logs = []
        ip = client_ip(request)
        actor_obj = actor if _is_user(actor) else None
        actor_name = actor.get_username() if actor is not None else ""
        for key in order:
            row = rows.get(key)
            if row is None:
                result.items.append(BatchItem(id=key, name="", deleted=False, reason=_("Not found.")))
                continue
            pk = row["pk"]
            if pk in actually_deleted:
                item = BatchItem(id=pk, name=row["name"], deleted=True)
            elif row["tenant_id"] != tenant.pk:
                item = BatchItem(
                    id=pk,
                    name=row["name"],
                    deleted=False,
                    reason=_("It is shared with this tenant by another one and is read-only here."),
                )
            elif pk in in_use:
                item = BatchItem(id=pk, name=row["name"], deleted=False, reason=_in_use_message(in_use[pk]))
            elif row["status"] not in DELETABLE:
                item = BatchItem(
                    id=pk, name=row["name"], deleted=False, reason=_status_message(row["status"])
                )
            else:
                item = BatchItem(
                    id=pk,
                    name=row["name"],
                    deleted=False,
                    reason=_("It changed while being deleted; try again."),
                )
            result.items.append(item)
            if row["tenant_id"] == tenant.pk:
                logs.append(
                    OperationLog(
                        tenant=tenant,
                        actor=actor_obj,
                        actor_name=actor_name,
                        action="image.delete",
                        target_type="image",
                        target_id=str(pk),
                        target_name=row["name"][:255],
                        result=OperationLog.Result.SUCCESS if item.deleted else OperationLog.Result.FAILURE,
                        message=english(BATCH_DELETED, deleted_params(row["status"]))
                        if item.deleted
                        else item.reason,
                        message_code=BATCH_DELETED if item.deleted else "",
                        message_params=deleted_params(row["status"]) if item.deleted else {},
                        client_ip=ip,
                    )
                )
        OperationLog.objects.bulk_create(logs, batch_size=BATCH_CHUNK)
        if actually_deleted:
            _after_delete(image_ids=list(actually_deleted), actor=actor, request=request)
    return result


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True
