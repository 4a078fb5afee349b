"""The image API's list, edit, delete and Excel export, on the same selectors, FilterSet and services as
the console list. `ImageLifecycleMixin` is mixed into the image viewset (with the import endpoints).
"""

from django.db import transaction
from django.db.models import prefetch_related_objects
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from tenants.api_base import TenantAPIMixin, require_manage_api
from tenants.models import Tenant

from ..exports import CONTENT_TYPE, export_response
from ..filters import ImageFilter
from ..models import CHECKSUM_FIELDS, SYSTEM_FIELDS, Image
from ..policy import can_change, can_share_globally, is_own
from ..selectors import image_get, image_listing, images_deleted, images_visible
from ..services import (
    ImageInUse,
    ImageProtected,
    TransitionNotAllowed,
    image_delete,
    image_set_enabled,
    image_set_sharing,
    image_update,
)
from ..services.lifecycle import DESCRIPTION_MAX_LENGTH, clean_labels


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ImagePagination(PageNumberPagination):
    """`count`, `next`, `previous`, `results`; `page_size` up to 500 (default 50)."""

    page_size_query_param = "page_size"
    max_page_size = 500


class XlsxRenderer(BaseRenderer):
    media_type = CONTENT_TYPE
    format = "xlsx"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


@extend_schema_field(serializers.ListField(child=serializers.CharField()))
class LabelsField(serializers.JSONField):
    pass


class ImageSerializer(serializers.ModelSerializer):
    """An image as the list and the detail show it."""

    project_group_name = serializers.CharField(source="project_group.name", default=None, read_only=True)
    storage_name = serializers.CharField(source="storage.name", default=None, read_only=True)
    shared_with = serializers.SerializerMethodField()
    read_only = serializers.SerializerMethodField(
        help_text="True for an image another tenant shares with this one: it can be used, not changed."
    )
    labels = LabelsField(read_only=True)
    error = serializers.CharField(
        source="error_text", read_only=True, help_text="Why a failed image failed, in the request's language."
    )

    class Meta:
        model = Image
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "disk_format",
            "source_format",
            *SYSTEM_FIELDS,
            "encrypted",
            "labels",
            "size",
            "compression",
            "compressed_size",
            "virtual_size",
            "md5",
            "sha256",
            "source",
            "status",
            "failure_reason",
            "stage",
            "progress",
            "bytes_done",
            "bytes_total",
            "bytes_per_second",
            "error",
            "target_size",
            "expected_sha256",
            *CHECKSUM_FIELDS,
            "enabled",
            "sharing",
            "shared_with",
            "read_only",
            "tenant",
            "project_group",
            "project_group_name",
            "storage",
            "storage_name",
            "created_at",
            "updated_at",
            "deleted_at",
            "purge_after",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_shared_with(self, image) -> list[int]:
        # Who else an image is shared with is the owner's business only.
        if not is_own(self.context["request"], image):
            return []
        return sorted(tenant.pk for tenant in image.shared_with.all())

    def get_read_only(self, image) -> bool:
        return not is_own(self.context["request"], image)


class ImagePatchSerializer(serializers.Serializer):
    """What PATCH may change. Every field is optional; those given are changed together or not at all."""

    name = serializers.CharField(required=False, trim_whitespace=False, max_length=256)
    description = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=DESCRIPTION_MAX_LENGTH
    )
    labels = serializers.ListField(
        child=serializers.CharField(allow_blank=True, max_length=256), required=False
    )
    enabled = serializers.BooleanField(required=False)
    sharing = serializers.ChoiceField(choices=Image.Sharing.choices, required=False)
    shared_with = serializers.PrimaryKeyRelatedField(
        queryset=Tenant.objects.filter(is_active=True),
        many=True,
        required=False,
        help_text="Tenant ids, with sharing=tenants.",
        # One message whether the id is unknown or names a tenant that cannot be chosen: a tenant's
        # existence is not for the asking.
        error_messages={
            "does_not_exist": gettext_lazy("“{pk_value}” is not a tenant this image can be shared with."),
            "incorrect_type": gettext_lazy("Give tenant ids as whole numbers."),
        },
    )

    def validate_labels(self, value):
        return clean_labels(value)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                _("Give at least one of: name, description, labels, enabled, sharing, shared_with.")
            )
        if "shared_with" in attrs and "sharing" not in attrs:
            raise serializers.ValidationError({"sharing": _("Give the sharing mode with shared_with.")})
        return attrs


class ImageLifecycleMixin:
    """list, partial_update (PATCH), destroy (DELETE) and the Excel export for the image viewset."""

    filterset_class = ImageFilter
    pagination_class = ImagePagination
    queryset = Image.objects.none()  # for the schema; requests use get_queryset
    lookup_value_converter = "uuid"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Image.objects.none()
        return images_visible(tenant=self.request.tenant, membership=self.request.membership)

    def get_object(self):
        image = image_get(
            tenant=self.request.tenant, membership=self.request.membership, pk=self.kwargs["pk"]
        )
        self.check_object_permissions(self.request, image)
        return image

    def _changeable(self):
        image = self.get_object()
        require_manage_api(self.request)
        if not can_change(self.request, image):
            raise exceptions.PermissionDenied(
                _("This image is shared with your tenant by another one and is read-only here.")
            )
        return image

    @extend_schema(
        summary="Images the tenant may see: its own and those shared with it (filters as query parameters)",
        responses=ImageSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        filterset = ImageFilter(request.query_params, queryset=self.get_queryset(), request=request)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        listing = image_listing(tenant=request.tenant, membership=request.membership, filterset=filterset)
        page = self.paginate_queryset(listing)
        prefetch_related_objects(page, "shared_with")
        return self.get_paginated_response(
            ImageSerializer(page, many=True, context={"request": request}).data
        )

    @extend_schema(
        summary="Edit name, description, labels, enabled, sharing (manage permission; own images only)",
        request=ImagePatchSerializer,
        responses={200: ImageSerializer},
    )
    def partial_update(self, request, *args, **kwargs):
        image = self._changeable()
        serializer = ImagePatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            if {"name", "description", "labels"} & data.keys():
                image = image_update(
                    image=image,
                    name=data.get("name"),
                    description=data.get("description"),
                    labels=data.get("labels"),
                    actor=request.user,
                    request=request._request,
                )
            if "enabled" in data:
                image = image_set_enabled(
                    image=image, enabled=data["enabled"], actor=request.user, request=request._request
                )
            if "sharing" in data:
                if data["sharing"] == Image.Sharing.GLOBAL and not can_share_globally(request):
                    raise exceptions.PermissionDenied(
                        _("Only a platform administrator can share an image globally.")
                    )
                image = image_set_sharing(
                    image=image,
                    sharing=data["sharing"],
                    tenants=data.get("shared_with", []),
                    actor=request.user,
                    request=request._request,
                )
        image = self.get_object()
        return Response(ImageSerializer(image, context={"request": request}).data)

    @extend_schema(
        summary="Delete an available or failed image by the deletion policy",
        description=(
            'Into the recycle bin (204), or, under the "immediate" deletion policy, destroyed: the image '
            "answers `status: deleting` until its expunge job has removed it (202)."
        ),
        responses={
            202: OpenApiResponse(description="The image's expunge was queued (policy: immediate)"),
            204: OpenApiResponse(description="The image went to the recycle bin"),
            409: OpenApiResponse(description="The image is importing, deleting, or used by a VM"),
        },
    )
    def destroy(self, request, *args, **kwargs):
        image = self._changeable()
        try:
            image = image_delete(image=image, actor=request.user, request=request._request)
        except TransitionNotAllowed as exc:
            raise Conflict(
                _("“%(name)s” is %(status)s; only available or failed images can be deleted.")
                % {"name": image.name, "status": exc.image.get_status_display()}
            ) from exc
        except (ImageInUse, ImageProtected) as exc:
            raise Conflict(" ".join(exc.messages)) from exc
        if image.status == Image.Status.DELETING:
            return Response(
                ImageSerializer(image, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
            )
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_renderers(self):
        if getattr(self, "action", None) == "export":
            return [JSONRenderer(), XlsxRenderer()]
        return super().get_renderers()

    def finalize_response(self, request, response, *args, **kwargs):
        # The export's errors are JSON whatever the client asked for: there is no spreadsheet to send.
        if getattr(self, "action", None) == "export" and isinstance(response, Response):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        summary="The Excel export of every image matching the filters (the console's export)",
        responses={(200, CONTENT_TYPE): OpenApiTypes.BINARY},
    )
    def export(self, request, *args, **kwargs):
        filterset = ImageFilter(request.query_params, queryset=self.get_queryset(), request=request)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        return export_response(queryset=filterset.qs, tenant=request.tenant)


class ImageViewSet(ImageLifecycleMixin, TenantAPIMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Images: list, detail, edit and delete (the import endpoints join this viewset)."""

    serializer_class = ImageSerializer

    @extend_schema(
        summary="One image",
        description="An image in the recycle bin answers with `status: deleted` and `purge_after` until it is "
        "expunged; then 404.",
    )
    def retrieve(self, request, *args, **kwargs):
        try:
            image = self.get_object()
        except Http404:
            image = (
                images_deleted(tenant=request.tenant, membership=request.membership)
                .select_related("project_group", "storage")
                .filter(pk=self.kwargs["pk"])
                .first()
            )
            if image is None:
                raise
        return Response(ImageSerializer(image, context={"request": request}).data)
