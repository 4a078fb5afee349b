from django.urls import path

from . import api

urlpatterns = [
    path("compute-hosts/", api.ComputeHostListAPIView.as_view(), name="api-compute-hosts"),
    path("vms/", api.VMListAPIView.as_view(), name="api-vms"),
    path("vms/<uuid:pk>/", api.VMDetailAPIView.as_view(), name="api-vm"),
    path("vms/<uuid:pk>/start", api.VMActionAPIView.as_view(action="start"), name="api-vm-start"),
    path("vms/<uuid:pk>/stop", api.VMActionAPIView.as_view(action="stop"), name="api-vm-stop"),
    path("vms/<uuid:pk>/reboot", api.VMActionAPIView.as_view(action="reboot"), name="api-vm-reboot"),
    path("vms/<uuid:pk>/create-image", api.VMCaptureAPIView.as_view(), name="api-vm-capture"),
]
