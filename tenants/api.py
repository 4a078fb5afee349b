import datetime

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from . import selectors, services
from .api_base import TenantAPIMixin, TenantAPIView, require_manage_api
from .models import OperationLog, ProjectGroup
from .permissions import can_manage


class WhoAmIView(TenantAPIView):
    @extend_schema(
        summary="The authenticated user and the tenant the API works in",
        responses=inline_serializer(
            "WhoAmI",
            {
                "username": serializers.CharField(),
                "tenant": inline_serializer(
                    "WhoAmITenant", {"id": serializers.IntegerField(), "name": serializers.CharField()}
                ),
                "role": serializers.CharField(allow_null=True),
                "can_manage": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request):
        membership = request.membership
        return Response(
            {
                "username": request.user.get_username(),
                "tenant": {"id": request.tenant.pk, "name": request.tenant.name},
                "role": membership.role
                if membership
                else ("administrator" if request.user.is_staff else None),
                "can_manage": can_manage(request),
            }
        )


class ProjectGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProjectGroup
        fields = ["id", "name", "description", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_name(self, value):
        name = value.strip()
        if not name:
            raise serializers.ValidationError(_("Give the project group a name."))
        clash = ProjectGroup.objects.filter(tenant=self.context["request"].tenant, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                _("This tenant already has a project group named “%(name)s”.") % {"name": name}
            )
        return name


@extend_schema_view(
    list=extend_schema(summary="The tenant's project groups (a sub-account sees only its own)"),
    retrieve=extend_schema(summary="One project group"),
    create=extend_schema(summary="Create a project group (manage permission)"),
    partial_update=extend_schema(summary="Rename or describe a project group (manage permission)"),
    update=extend_schema(summary="Replace a project group's name and description (manage permission)"),
    destroy=extend_schema(summary="Delete a project group; its images keep existing without one"),
)
class ProjectGroupViewSet(TenantAPIMixin, viewsets.ModelViewSet):
    serializer_class = ProjectGroupSerializer
    filter_backends: list = []
    queryset = ProjectGroup.objects.none()  # for the schema; requests use get_queryset
    lookup_value_converter = "int"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ProjectGroup.objects.none()
        return selectors.project_groups_visible(
            tenant=self.request.tenant, membership=self.request.membership
        )

    def get_object(self):
        group = super().get_object()
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            require_manage_api(self.request)
        return group

    def perform_create(self, serializer):
        require_manage_api(self.request)
        serializer.instance = services.project_group_create(
            tenant=self.request.tenant, request=self.request._request, **serializer.validated_data
        )

    def perform_update(self, serializer):
        group = serializer.instance
        data = {"name": group.name, "description": group.description, **serializer.validated_data}
        serializer.instance = services.project_group_update(
            group=group, request=self.request._request, **data
        )

    def perform_destroy(self, instance):
        services.project_group_delete(group=instance, request=self.request._request)


class OperationLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = OperationLog
        fields = [
            "id",
            "created_at",
            "actor_name",
            "action",
            "target_type",
            "target_id",
            "target_name",
            "result",
            "message",
            "client_ip",
        ]


class UTCIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time moved to UTC: PostgreSQL refuses historic offsets such as -16:04."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC)
        except OverflowError:
            raise forms.ValidationError(
                _("Enter a time between the years 1 and 9999."), code="invalid"
            ) from None


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class OperationLogFilter(django_filters.FilterSet):
    result = django_filters.ChoiceFilter(choices=OperationLog.Result.choices)
    action = django_filters.CharFilter(help_text="Exact action, e.g. image.delete")
    target_id = django_filters.CharFilter(help_text="The resource's ID")
    q = django_filters.CharFilter(method="filter_q", help_text="Part of the action or the resource's name")
    since = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = OperationLog
        fields: list[str] = []

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(target_name__icontains=value) | Q(action__icontains=value))


@extend_schema_view(
    list=extend_schema(summary="The tenant's operation log, newest first: who did what to which resource"),
    retrieve=extend_schema(summary="One operation log entry"),
)
class OperationLogViewSet(TenantAPIMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = OperationLogSerializer
    filterset_class = OperationLogFilter
    queryset = OperationLog.objects.none()  # for the schema; requests use get_queryset
    lookup_value_converter = "int"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return OperationLog.objects.none()
        return selectors.operation_logs(tenant=self.request.tenant)
