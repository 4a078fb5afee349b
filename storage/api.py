"""Read-only storage API: what a tenant may import into, with usage."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from tenants.api_base import TenantAPIView
from tenants.permissions import get_scoped_or_404

from . import selectors
from .models import ImageStorage


class UsageSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    used = serializers.IntegerField()
    free = serializers.IntegerField()
    logical = serializers.IntegerField()
    dedup_ratio = serializers.FloatField()


class StorageSerializer(serializers.ModelSerializer):
    usable_for_import = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()

    class Meta:
        model = ImageStorage
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "data_center",
            "state",
            "reserved_bytes",
            "usable_for_import",
            "usage",
        ]

    def get_usable_for_import(self, storage) -> bool:
        return storage.enabled and storage.state == ImageStorage.State.CONNECTED

    @extend_schema(responses=UsageSerializer(allow_null=True))
    def get_usage(self, storage) -> dict | None:
        usage = selectors.storage_usage(storage=storage)
        return None if usage is None else UsageSerializer(usage).data


class StorageListAPIView(TenantAPIView):
    @extend_schema(
        summary="Image storages (enabled ones); `usable_for_import` marks those an import may use",
        responses=StorageSerializer(many=True),
    )
    def get(self, request):
        storages = selectors.storage_list_for_tenant(tenant=request.tenant)
        return Response(StorageSerializer(storages, many=True).data)


class StorageDetailAPIView(TenantAPIView):
    @extend_schema(summary="One image storage", responses=StorageSerializer)
    def get(self, request, pk):
        storage = get_scoped_or_404(selectors.storage_list_for_tenant(tenant=request.tenant), pk=pk)
        return Response(StorageSerializer(storage).data)
