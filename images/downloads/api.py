"""The API of download links and exports, on the same services and selectors as the console.

POST/GET   /api/v1/images/<id>/download-links            create (201: url, expires_at) / list live links
DELETE     /api/v1/images/<id>/download-links/<link id>  revoke (204)
POST/GET   /api/v1/images/<id>/exports                   export in a format (202) / the image's exports
GET        /api/v1/exports/                              every export of the tenant's images
GET/DELETE /api/v1/exports/<id>                          one export / delete it (204)
POST/GET   /api/v1/exports/<id>/download-links           links to an export's file
"""

from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from tenants.api_base import TenantAPIView, require_manage_api

from ..api.views import owned_image
from ..models import DownloadLink, ExportedImage
from ..policy import can_download, can_revoke, is_own
from . import selectors, services


class DownloadLinkSerializer(serializers.ModelSerializer):
    file_name = serializers.CharField(source="filename")
    created_by = serializers.CharField(source="created_by_name")
    revoked = serializers.BooleanField()
    export = serializers.UUIDField(source="export_id", allow_null=True)

    class Meta:
        model = DownloadLink
        fields = ["id", "file_name", "export", "created_at", "created_by", "expires_at", "revoked"]


class NewDownloadLinkSerializer(DownloadLinkSerializer):
    url = serializers.SerializerMethodField(help_text="The address; shown only in this answer.")

    class Meta(DownloadLinkSerializer.Meta):
        fields = ["url", *DownloadLinkSerializer.Meta.fields]

    def get_url(self, link) -> str:
        return self.context["url"]


class ExportSerializer(serializers.ModelSerializer):
    image = serializers.UUIDField(source="image_id")
    image_name = serializers.CharField(source="image.name")
    file_name = serializers.CharField(source="filename")
    exported_at = serializers.DateTimeField(source="finished_at")
    made_from = serializers.CharField(
        source="source_name", help_text="What the export was made from when not the image itself (a VM)."
    )

    class Meta:
        model = ExportedImage
        fields = [
            "id",
            "image",
            "image_name",
            "format",
            "made_from",
            "status",
            "progress",
            "file_name",
            "size",
            "md5",
            "sha256",
            "error",
            "created_at",
            "exported_at",
            "expires_at",
        ]


def _refused(error: services.DownloadRefused) -> Response:
    return Response({"detail": error.message, "code": error.code}, status=error.status)


def _require_download(request, image) -> None:
    if not can_download(request._request, image):
        if not is_own(request._request, image):
            raise exceptions.PermissionDenied(
                _("This image is shared with your tenant and is read-only here.")
            )
        raise exceptions.PermissionDenied(_("Only available images can be downloaded."))


def _new_link(request, image, export=None) -> Response:
    try:
        link, token = services.link_create(
            image=image, actor=request.user, export=export, request=request._request
        )
    except services.DownloadRefused as error:
        return _refused(error)
    url = request.build_absolute_uri(services.link_path(link, token))
    return Response(NewDownloadLinkSerializer(link, context={"url": url}).data, status=201)


def _export_or_404(request, pk) -> ExportedImage:
    try:
        return selectors.export_get(tenant=request.tenant, membership=request.membership, pk=pk)
    except Http404:
        raise exceptions.NotFound(_("No such export.")) from None


class ImageDownloadLinksAPIView(TenantAPIView):
    @extend_schema(summary="The image's live download links", responses=DownloadLinkSerializer(many=True))
    def get(self, request, pk):
        image = owned_image(request, pk)
        links = selectors.links_live(image=image).filter(export__isnull=True)
        return Response(DownloadLinkSerializer(links, many=True).data)

    @extend_schema(
        summary="Create a download link (valid 24 hours by default; no login needed to use it)",
        request=None,
        responses={
            201: NewDownloadLinkSerializer,
            409: OpenApiResponse(description="The image is not available"),
        },
    )
    def post(self, request, pk):
        image = owned_image(request, pk)
        _require_download(request, image)
        return _new_link(request, image)


class ImageDownloadLinkAPIView(TenantAPIView):
    @extend_schema(summary="Revoke a download link", responses={204: None})
    def delete(self, request, pk, link_pk):
        image = owned_image(request, pk)
        link = selectors.link_get(image=image, pk=link_pk)
        if not can_revoke(request._request, link):
            raise exceptions.PermissionDenied(
                _("Only the link's maker or an account that may manage can revoke it.")
            )
        services.link_revoke(link=link, actor=request.user, request=request._request)
        return Response(status=204)


class ImageExportsAPIView(TenantAPIView):
    @extend_schema(summary="The image's exports", responses=ExportSerializer(many=True))
    def get(self, request, pk):
        image = owned_image(request, pk)
        exports = selectors.exports_visible(tenant=request.tenant, membership=request.membership).filter(
            image=image
        )
        return Response(ExportSerializer(exports, many=True).data)

    @extend_schema(
        summary="Export the image once in a format (qcow2, raw, vmdk streamOptimized, vhd); a job writes it",
        request=inline_serializer(
            "ExportCreate", {"format": serializers.ChoiceField(ExportedImage.IMAGE_FORMATS)}
        ),
        responses={
            202: ExportSerializer,
            400: OpenApiResponse(description="Unknown format"),
            409: OpenApiResponse(
                description="Already exported in that format, or the image is not available"
            ),
        },
    )
    def post(self, request, pk):
        image = owned_image(request, pk)
        require_manage_api(request)
        fmt = request.data.get("format", "") if isinstance(request.data, dict) else ""
        try:
            export = services.export_create(
                image=image, fmt=fmt, actor=request.user, request=request._request
            )
        except services.DownloadRefused as error:
            return _refused(error)
        except ValidationError as error:
            return Response(error.message_dict, status=400)
        return Response(ExportSerializer(export).data, status=202)


class ExportListAPIView(TenantAPIView):
    @extend_schema(summary="Every export of the tenant's images", responses=ExportSerializer(many=True))
    def get(self, request):
        exports = selectors.exports_visible(tenant=request.tenant, membership=request.membership)[:1000]
        return Response(ExportSerializer(exports, many=True).data)


class ExportAPIView(TenantAPIView):
    @extend_schema(summary="One export", responses=ExportSerializer)
    def get(self, request, pk):
        return Response(ExportSerializer(_export_or_404(request, pk)).data)

    @extend_schema(
        summary="Delete an export (its file and its links); the image stays", responses={204: None}
    )
    def delete(self, request, pk):
        export = _export_or_404(request, pk)
        require_manage_api(request)
        services.export_delete(export=export, actor=request.user, request=request._request)
        return Response(status=204)


class ExportDownloadLinksAPIView(TenantAPIView):
    @extend_schema(summary="The export's live download links", responses=DownloadLinkSerializer(many=True))
    def get(self, request, pk):
        export = _export_or_404(request, pk)
        links = selectors.links_live(image=export.image).filter(export=export)
        return Response(DownloadLinkSerializer(links, many=True).data)

    @extend_schema(
        summary="Create a download link to the exported file",
        request=None,
        responses={
            201: NewDownloadLinkSerializer,
            409: OpenApiResponse(description="The export is not ready"),
        },
    )
    def post(self, request, pk):
        export = _export_or_404(request, pk)
        _require_download(request, export.image)
        return _new_link(request, export.image, export)
