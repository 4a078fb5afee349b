"""The VM and compute-host API (DESIGN.md's fixed points): `GET /api/v1/compute-hosts/`,
`GET|POST /api/v1/vms/`, `GET|DELETE /api/v1/vms/<id>/`, `POST /api/v1/vms/<id>/start|stop|reboot`,
`POST /api/v1/vms/<id>/create-image`. Same services, selectors and policy as the console."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from images.models import Image
from tenants.api_base import TenantAPIView, require_manage_api

from .models import ComputeHost, VirtualMachine
from .policy import vm_actions
from .selectors import hosts_for_placement, vm_get, vms_visible
from .services import capture
from .services import vms as vm_services
from .services.vms import VMActionRefused
from .views import usable_images


class ComputeHostSerializer(serializers.ModelSerializer):
    class Meta:
        model = ComputeHost
        fields = [
            "id",
            "name",
            "state",
            "domain_type",
            "arch",
            "guest_archs",
            "uefi",
            "cpus",
            "free_memory_bytes",
            "network",
        ]


class VMSerializer(serializers.ModelSerializer):
    image_name = serializers.CharField(source="image.name", read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)
    stage = serializers.CharField(
        source="stage_text", read_only=True, help_text="What the VM is doing now, in the request's language."
    )

    class Meta:
        model = VirtualMachine
        fields = [
            "id",
            "name",
            "state",
            "stage",
            "error",
            "image",
            "image_name",
            "host",
            "host_name",
            "vcpus",
            "memory_mib",
            "disk_gb",
            "network",
            "boot_mode",
            "password_applied",
            "project_group",
            "created_at",
            "state_checked_at",
            "last_reboot",
            "last_reboot_at",
        ]
        extra_kwargs = {
            "last_reboot": {
                "help_text": "How the last Reboot went: acpi (the guest restarted itself) or reset (it did "
                "not react to the ACPI reboot within COMPUTE_REBOOT_TIMEOUT and was reset); empty before one"
            }
        }


class VMCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    image = serializers.UUIDField()
    host = serializers.IntegerField(required=False, allow_null=True, help_text="Default: automatic placement")
    vcpus = serializers.IntegerField(default=1)
    memory_mib = serializers.IntegerField(default=512)
    disk_gb = serializers.IntegerField(
        required=False, allow_null=True, help_text="Default: the image's virtual size"
    )
    network = serializers.CharField(required=False, allow_blank=True, help_text="Default: the host's network")
    admin_password = serializers.CharField(required=False, allow_blank=True, write_only=True)


class CaptureSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(required=False, allow_blank=True, max_length=1024)


def _refused(error: Exception, status: int = 409) -> Response:
    return Response({"detail": str(error)}, status=status)


class ComputeHostListAPIView(TenantAPIView):
    @extend_schema(
        summary="Compute hosts a tenant may place VMs on", responses=ComputeHostSerializer(many=True)
    )
    def get(self, request):
        return Response(ComputeHostSerializer(hosts_for_placement(), many=True).data)


class VMPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class VMListAPIView(TenantAPIView):
    @extend_schema(
        summary="The tenant's VMs (filters: state, q, project_group)", responses=VMSerializer(many=True)
    )
    def get(self, request):
        queryset = vms_visible(tenant=request.tenant, membership=request.membership).order_by(
            "-created_at", "-pk"
        )
        state = request.query_params.get("state")
        if state:
            queryset = queryset.filter(state=state)
        group = request.query_params.get("project_group", "")
        if group.isdigit():
            queryset = queryset.filter(project_group_id=int(group))
        if request.query_params.get("q"):
            queryset = queryset.filter(name__icontains=request.query_params["q"])
        paginator = VMPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(VMSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a VM from an image", request=VMCreateSerializer, responses={202: VMSerializer}
    )
    def post(self, request):
        require_manage_api(request)
        data = VMCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            image = usable_images(request).get(pk=values["image"])
        except Image.DoesNotExist:
            return Response({"image": [_("No available, enabled system image with that id.")]}, status=400)
        host = None
        if values.get("host") is not None:
            host = hosts_for_placement().filter(pk=values["host"]).first()
            if host is None:
                return Response({"host": [_("No enabled compute host with that id.")]}, status=400)
        try:
            vm = vm_services.vm_create(
                tenant=request.tenant,
                image=image,
                name=values["name"],
                vcpus=values["vcpus"],
                memory_mib=values["memory_mib"],
                disk_gb=values.get("disk_gb"),
                host=host,
                hosts=hosts_for_placement(),
                network=values.get("network"),
                admin_password=values.get("admin_password", ""),
                actor=request.user,
                request=request._request,
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                return Response(
                    {k: [str(m) for e in v for m in e.messages] for k, v in error.error_dict.items()},
                    status=400,
                )
            return Response({"detail": " ".join(error.messages), "code": error.code}, status=400)
        return Response(VMSerializer(vm).data, status=202)


class VMDetailAPIView(TenantAPIView):
    @extend_schema(summary="One VM, its state read from libvirt", responses=VMSerializer)
    def get(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        if vm.state != VirtualMachine.State.CREATING:
            vm = vm_services.vm_refresh(vm)
        return Response(VMSerializer(vm).data)

    @extend_schema(summary="Delete a VM (power off, undefine, remove its volumes)", responses={204: None})
    def delete(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage_api(request)
        try:
            vm_services.vm_delete(vm=vm, actor=request.user, request=request._request)
        except VMActionRefused as error:
            return _refused(error)
        return Response(status=204)


class VMActionAPIView(TenantAPIView):
    action = ""

    @extend_schema(
        summary="start, stop (ACPI, forced after a timeout) or reboot (ACPI, reset after a timeout; "
        "last_reboot tells which)",
        request=None,
        responses=VMSerializer,
    )
    def post(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage_api(request)
        vm = vm_services.vm_refresh(vm)
        if not vm_actions(request._request, vm)[self.action]:
            return _refused(
                _("“%(name)s” is %(state)s: this action is not possible now.")
                % {"name": vm.name, "state": vm.get_state_display()}
            )
        try:
            vm = getattr(vm_services, f"vm_{self.action}")(
                vm=vm, actor=request.user, request=request._request
            )
        except VMActionRefused as error:
            return _refused(error)
        return Response(VMSerializer(vm).data)


class VMCaptureAPIView(TenantAPIView):
    @extend_schema(
        summary="Create an image from a stopped VM", request=CaptureSerializer, responses={202: None}
    )
    def post(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage_api(request)
        data = CaptureSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            image = capture.vm_capture(
                vm=vm, actor=request.user, request=request._request, **data.validated_data
            )
        except VMActionRefused as error:
            return _refused(error)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                return Response(
                    {k: [str(m) for e in v for m in e.messages] for k, v in error.error_dict.items()},
                    status=400,
                )
            return Response({"detail": " ".join(error.messages)}, status=400)
        return Response({"image": str(image.pk), "status": image.status}, status=202)
