"""The recycle bin's API: `GET /api/v1/recycle-bin/` (filters as on the image list),
`POST /api/v1/images/<id>/restore` and `POST /api/v1/images/<id>/expunge` (DESIGN.md's fixed points)."""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response

from images.api.lifecycle import Conflict, ImagePagination, ImageSerializer
from images.models import Image
from images.services.transitions import TransitionNotAllowed
from tenants.api_base import TenantAPIMixin, TenantAPIView, require_manage_api

from .filters import RecycleBinFilter
from .selectors import bin_image_get, images_in_bin
from .services import RestoreRefused, image_expunge, image_restore


class RecycleBinAPIView(TenantAPIMixin, ListAPIView):
    serializer_class = ImageSerializer
    pagination_class = ImagePagination
    queryset = Image.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Image.objects.none()
        return images_in_bin(tenant=self.request.tenant, membership=self.request.membership)

    @extend_schema(
        summary="The tenant's images in the recycle bin (status deleted, or deleting while being expunged)",
        responses=ImageSerializer(many=True),
    )
    def get(self, request, *args, **kwargs):
        filterset = RecycleBinFilter(request.query_params, queryset=self.get_queryset(), request=request)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        page = self.paginate_queryset(filterset.qs.prefetch_related("shared_with"))
        return self.get_paginated_response(
            ImageSerializer(page, many=True, context={"request": request}).data
        )


def _bin_image(request, pk) -> Image:
    image = bin_image_get(tenant=request.tenant, membership=request.membership, pk=pk)
    require_manage_api(request)
    return image


class RestoreAPIView(TenantAPIView):
    @extend_schema(
        summary="Restore an image from the recycle bin to the status it had (available or failed)",
        request=None,
        responses={
            200: ImageSerializer,
            409: OpenApiResponse(description="Not in the recycle bin, or the image-count quota is full"),
        },
    )
    def post(self, request, pk):
        image = _bin_image(request, pk)
        try:
            image = image_restore(image=image, actor=request.user, request=request._request)
        except RestoreRefused as exc:
            return Response({"detail": " ".join(exc.messages), "code": "quota_images"}, status=409)
        except TransitionNotAllowed as exc:
            raise Conflict(str(exc)) from exc
        return Response(ImageSerializer(image, context={"request": request}).data)


class ExpungeAPIView(TenantAPIView):
    @extend_schema(
        summary="Destroy an image in the recycle bin: 202, `status: deleting` until its job removed it",
        request=None,
        responses={202: ImageSerializer, 409: OpenApiResponse(description="Not in the recycle bin")},
    )
    def post(self, request, pk):
        image = _bin_image(request, pk)
        try:
            image = image_expunge(image=image, actor=request.user, request=request._request)
        except TransitionNotAllowed as exc:
            raise Conflict(
                _("“%(name)s” is %(status)s: only images in the recycle bin can be expunged.")
                % {"name": exc.image.name, "status": exc.image.get_status_display()}
            ) from exc
        return Response(
            ImageSerializer(image, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )
