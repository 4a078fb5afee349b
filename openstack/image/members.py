"""Visibility and members: our sharing modes (not shared, chosen tenants, global) as Glance's, and the
members of an image as our shares with chosen tenants, with their consent (pending, accepted, rejected)."""

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.utils.translation import gettext as _

from images import selectors
from images.models import Image, ImageShare
from images.services import (
    ShareExists,
    image_set_sharing,
    image_share_add,
    image_share_answer,
    image_share_remove,
)
from tenants.models import Tenant

from ..http import ApiError, OpenStackView, json_response, read_json
from .access import own_image, visible_image
from .serialize import glance_time


def set_visibility(request, image: Image, visibility) -> Image:
    if visibility == "private":
        return image_set_sharing(
            image=image, sharing=Image.Sharing.PRIVATE, actor=request.user, request=request
        )
    if visibility == "public":
        if not request.user.is_staff:
            raise ApiError(
                403, _("Only a platform administrator can make an image public (shared globally).")
            )
        return image_set_sharing(
            image=image, sharing=Image.Sharing.GLOBAL, actor=request.user, request=request
        )
    if visibility == "shared":
        # Shared with the members added through /members; until there is one the image stays private.
        return image
    if visibility == "community":
        raise ApiError(400, _("Community images are not supported here; use shared with members, or public."))
    raise ApiError(400, _("Invalid visibility value: %(value)s") % {"value": visibility})


def offered_images(request, *, status: str):
    if status == "all":
        offered = selectors.images_offered(tenant=request.tenant, statuses=ImageShare.Status.values)
        visible = selectors.images_visible(tenant=request.tenant, membership=request.membership)
        return Image.objects.filter(Q(pk__in=visible.values("pk")) | Q(pk__in=offered.values("pk")))
    return selectors.images_offered(tenant=request.tenant, statuses=[status])


def member_body(share: ImageShare) -> dict:
    return {
        "created_at": glance_time(share.created_at),
        "image_id": str(share.image_id),
        "member_id": str(share.tenant_id),
        "schema": "/v2/schemas/member",
        "status": share.status,
        "updated_at": glance_time(share.updated_at),
    }


def _image_and_role(request, image_id) -> tuple[Image, bool]:
    """The image and whether the caller's tenant owns it (else it is a member of it)."""
    try:
        image = visible_image(request, image_id)
    except Http404:
        image = selectors.image_offered_get(tenant=request.tenant, pk=image_id)
    return image, image.tenant_id == request.tenant.pk


def _tenant(member_id: str) -> Tenant:
    member_id = str(member_id or "")
    tenant = Tenant.objects.filter(pk=int(member_id)).first() if member_id.isdigit() else None
    if tenant is None:
        tenant = Tenant.objects.filter(name=member_id, is_active=True).first()
    if tenant is None:
        raise ApiError(404, _("No project (tenant) %(member)s.") % {"member": member_id})
    return tenant


class MembersView(OpenStackView):
    def get(self, request, image_id):
        image, owner = _image_and_role(request, image_id)
        shares = ImageShare.objects.filter(image=image).order_by("created_at", "pk")
        if not owner:
            shares = shares.filter(tenant=request.tenant)
        return json_response({"members": [member_body(s) for s in shares], "schema": "/v2/schemas/members"})

    def post(self, request, image_id):
        image = own_image(request, image_id)
        body = read_json(request)
        if not isinstance(body, dict) or "member" not in body:
            raise ApiError(400, _('Send {"member": PROJECT_ID}.'))
        if image.sharing == Image.Sharing.GLOBAL:
            raise ApiError(403, _("Only shared images have members."))
        tenant = _tenant(body["member"])
        try:
            share = image_share_add(image=image, tenant=tenant, actor=request.user, request=request)
        except ShareExists as error:
            raise ApiError(409, " ".join(error.messages)) from error
        return json_response(member_body(share))


class MemberView(OpenStackView):
    def _share(self, request, image_id, member_id) -> tuple[ImageShare, bool]:
        image, owner = _image_and_role(request, image_id)
        share = ImageShare.objects.filter(
            image=image, tenant_id=int(member_id) if str(member_id).isdigit() else None
        ).first()
        if share is None or (not owner and share.tenant_id != request.tenant.pk):
            raise ApiError(
                404,
                _("%(member)s is not a member of image %(image)s.")
                % {"member": member_id, "image": image_id},
            )
        return share, owner

    def get(self, request, image_id, member_id):
        share, _owner = self._share(request, image_id, member_id)
        return json_response(member_body(share))

    def put(self, request, image_id, member_id):
        share, _owner = self._share(request, image_id, member_id)
        if share.tenant_id != request.tenant.pk:
            raise ApiError(403, _("Only the member itself can accept or reject an image."))
        self.require_manage(request)
        body = read_json(request)
        status = body.get("status") if isinstance(body, dict) else None
        try:
            share = image_share_answer(
                image=share.image, tenant=request.tenant, status=status, actor=request.user, request=request
            )
        except ValidationError as error:
            raise ApiError(400, " ".join(error.messages)) from error
        return json_response(member_body(share))

    def delete(self, request, image_id, member_id):
        share, owner = self._share(request, image_id, member_id)
        if not owner:
            raise ApiError(403, _("Only the image's owner can remove a member."))
        own_image(request, image_id)
        image_share_remove(image=share.image, tenant=share.tenant, actor=request.user, request=request)
        return HttpResponse(status=204)
