from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from imageconsole.api import TenantAPIView

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
