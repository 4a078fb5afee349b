"""Changes to an image after its import: name and remarks, enabled, sharing, labels, and deletion.

Deletion moves `available` or `failed` images to `deleted` (the recycle bin) with who, when and until
when (`purge_after`), or, under the "immediate" deletion policy, to `deleting` for an expunge. The
recycle bin (an app above this one) answers which through `images.hooks.deletion_plan` and starts the
follow-up work through `images.hooks.run_after_delete`. Nothing is erased here.
"""

import unicodedata
from collections.abc import Iterable
from uuid import UUID

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from tenants.models import OperationLog, Tenant
from tenants.oplog import word
from tenants.services import log, log_many

from .. import hooks
from ..catalog import NAME_MAX_LENGTH, validate_image_name  # noqa: F401  (one name rule for import and edit)
from ..models import Image, ImageShare
from .batch import BATCH_CHUNK, BatchItem, BatchResult, batch_rows, wanted_ids
from .transitions import TransitionNotAllowed, image_transition, image_transition_many

DESCRIPTION_MAX_LENGTH = Image._meta.get_field("description").max_length  # one limit: create and edit
LABEL_MAX_LENGTH = 64
LABELS_MAX = 20
DELETABLE = frozenset({Image.Status.AVAILABLE, Image.Status.FAILED})


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
    # Tenants already chosen keep their answer; newly chosen ones are asked (pending).
    image.shared_with.set(
        tenants if sharing == Image.Sharing.TENANTS else [],
        through_defaults={"status": ImageShare.Status.PENDING},
    )
    names = ", ".join(sorted(t.name for t in tenants)) if sharing == Image.Sharing.TENANTS else ""
    log(
        action="image.share",
        tenant=image.tenant,
        actor=actor,
        target=image,
        message_code=gettext_noop("%(mode)s%(tenants)s"),
        params={
            "mode": word(Image.Sharing(sharing).label, "Sharing mode"),
            "tenants": f": {names}" if names else "",
        },
        request=request,
    )
    return image


# --- deletion ---------------------------------------------------------------------------------------


class ImageInUse(ValidationError):
    """The image backs one or more VMs; the message names them."""


class ImageProtected(ValidationError):
    """The image is protected: it cannot be deleted until its protection is removed."""


def vms_using_images(*, image_ids: Iterable[UUID]) -> dict[UUID, list[str]]:
    """Hook for the compute app: the names of the VMs that use each image, for images in use.

    `compute.VirtualMachine` has an `image` foreign key, a `name` and a `tenant`; VMs of another tenant (on
    a shared image) are not named. Without the compute app nothing is in use.
    """
    try:
        vm_model = apps.get_model("compute", "VirtualMachine")
    except LookupError:
        return {}
    in_use: dict[UUID, list[str]] = {}
    ids = list(image_ids)
    for start in range(0, len(ids), BATCH_CHUNK):
        chunk = ids[start : start + BATCH_CHUNK]
        owners = dict(Image.objects.filter(pk__in=chunk).values_list("pk", "tenant_id"))
        rows = vm_model.objects.filter(image_id__in=chunk).values_list("image_id", "name", "tenant_id")
        for image_id, vm_name, vm_tenant_id in rows:
            # A shared image's VMs in other tenants are counted, never named.
            shown = vm_name if vm_tenant_id == owners.get(image_id) else _("(a VM of another tenant)")
            in_use.setdefault(image_id, []).append(shown)
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


def _after_delete(*, image_ids: list[UUID], tenant_id, expunge_now: bool) -> None:
    """Once the deleting transaction commits: the recycle bin schedules expiry or starts the expunge."""
    ids = list(image_ids)
    transaction.on_commit(
        lambda: hooks.run_after_delete(image_ids=ids, tenant_id=tenant_id, expunge_now=expunge_now)
    )


def _deletion_changes(plan: hooks.DeletionPlan, *, now, actor, restore_status: str) -> dict:
    return {
        "stage": "",
        "deleted_at": now,
        "deleted_by": actor if _is_user(actor) else None,
        "purge_after": None if plan.expunge_now else plan.purge_after,
        "restore_status": restore_status,
    }


def image_delete(*, image: Image, actor=None, request=None) -> Image:
    """Delete one image by the tenant's deletion policy: into the recycle bin (`deleted`), or, under
    "immediate", to `deleting` with its expunge queued. Available or failed only, not while a VM uses it.
    """
    with transaction.atomic():
        locked = Image.objects.select_for_update().get(pk=image.pk)
        if locked.status not in DELETABLE:
            raise TransitionNotAllowed(locked, Image.Status.DELETED)
        if locked.protected:
            raise ImageProtected(
                _("“%(name)s” is protected; remove its protection before deleting it.")
                % {"name": locked.name},
                code="image_protected",
            )
        vm_names = vms_using_images(image_ids=[locked.pk]).get(locked.pk)
        if vm_names:
            raise ImageInUse(
                _("“%(name)s” cannot be deleted. %(reason)s")
                % {"name": locked.name, "reason": _in_use_message(vm_names)},
                code="image_in_use",
            )
        plan = hooks.deletion_plan(tenant=locked.tenant)
        deleted = image_transition(
            image_id=locked.pk,
            to=Image.Status.DELETING if plan.expunge_now else Image.Status.DELETED,
            allowed_from=DELETABLE,
            action="image.delete",
            actor=actor,
            request=request,
            result=OperationLog.Result.STARTED if plan.expunge_now else OperationLog.Result.SUCCESS,
            changes=_deletion_changes(plan, now=timezone.now(), actor=actor, restore_status=locked.status),
        )
        _after_delete(image_ids=[locked.pk], tenant_id=locked.tenant_id, expunge_now=plan.expunge_now)
    return deleted


def _is_user(actor) -> bool:
    return actor is not None and getattr(actor, "pk", None) is not None


def image_batch_delete(
    *,
    tenant: Tenant,
    scope: QuerySet[Image],
    image_ids: Iterable[UUID | str] | None = None,
    actor=None,
    request=None,
) -> BatchResult:
    """Delete many images in one transaction, in bulk, with a result per image.

    `scope` is what the user may see (the list's selector, possibly filtered); `image_ids` picks rows of
    it, or None for "all matching the filter". Images of other tenants shared with this one, images not
    available or failed, and images used by VMs are skipped with the reason; ids the user cannot see are
    reported as not found. Queries grow with the number of chunks of BATCH_CHUNK images, not per image.
    """
    wanted = wanted_ids(image_ids)
    result = BatchResult()
    now = timezone.now()
    with transaction.atomic():
        rows = batch_rows(scope, wanted, ("pk", "name", "status", "tenant_id"))
        protected = {
            pk
            for start in range(0, len(rows), BATCH_CHUNK)
            for pk in Image.objects.filter(
                pk__in=[row["pk"] for row in list(rows.values())[start : start + BATCH_CHUNK]], protected=True
            ).values_list("pk", flat=True)
        }
        candidates = [
            row["pk"]
            for row in rows.values()
            if row["tenant_id"] == tenant.pk and row["status"] in DELETABLE and row["pk"] not in protected
        ]
        in_use = vms_using_images(image_ids=candidates)
        deletable = [pk for pk in candidates if pk not in in_use]
        # The one status writer locks and re-checks each row: one that changed meanwhile stays as it is.
        # The status before deletion is kept for a restore, so each status moves on its own.
        plan = hooks.deletion_plan(tenant=tenant)
        target = Image.Status.DELETING if plan.expunge_now else Image.Status.DELETED
        actually_deleted: set = set()
        for status in DELETABLE:
            of_status = [pk for pk in deletable if rows[str(pk)]["status"] == status]
            if not of_status:
                continue
            actually_deleted.update(
                image_transition_many(
                    image_ids=of_status,
                    to=target,
                    allowed_from=[status],
                    tenant=tenant,
                    action="image.delete",
                    actor=actor,
                    request=request,
                    result=OperationLog.Result.STARTED if plan.expunge_now else OperationLog.Result.SUCCESS,
                    changes=_deletion_changes(plan, now=now, actor=actor, restore_status=status),
                    now=now,
                ).moved_ids
            )
        # A result per image, in the order asked for.
        order = wanted if wanted is not None else list(rows)
        refusals = []
        for key in order:
            row = rows.get(key)
            if row is None:
                result.items.append(BatchItem(id=key, name="", done=False, reason=_("Not found.")))
                continue
            pk = row["pk"]
            if pk in actually_deleted:
                item = BatchItem(id=pk, name=row["name"], done=True)
            elif row["tenant_id"] != tenant.pk:
                item = BatchItem(
                    id=pk,
                    name=row["name"],
                    done=False,
                    reason=_("It is shared with this tenant by another one and is read-only here."),
                )
            elif pk in protected:
                item = BatchItem(
                    id=pk,
                    name=row["name"],
                    done=False,
                    reason=_("It is protected; remove its protection first."),
                )
            elif pk in in_use:
                item = BatchItem(id=pk, name=row["name"], done=False, reason=_in_use_message(in_use[pk]))
            elif row["status"] not in DELETABLE:
                item = BatchItem(id=pk, name=row["name"], done=False, reason=_status_message(row["status"]))
            else:
                item = BatchItem(
                    id=pk,
                    name=row["name"],
                    done=False,
                    reason=_("It changed while being deleted; try again."),
                )
            result.items.append(item)
            if not item.deleted and row["tenant_id"] == tenant.pk:
                refusals.append(
                    {"tenant_id": tenant.pk, "target": Image(pk=pk, name=row["name"]), "message": item.reason}
                )
        # The moved rows were logged by the transition; the refused ones are logged here.
        log_many(
            action="image.delete",
            entries=refusals,
            actor=actor,
            request=request,
            result=OperationLog.Result.FAILURE,
            batch_size=BATCH_CHUNK,
        )
        if actually_deleted:
            _after_delete(image_ids=list(actually_deleted), tenant_id=tenant.pk, expunge_now=plan.expunge_now)
    return result
