from django.urls import path

from . import views

app_name = "compute"

urlpatterns = [
    path("", views.VMListView.as_view(), name="list"),
    path("create/", views.VMCreateView.as_view(), name="create"),
    path("<uuid:pk>/", views.VMDetailView.as_view(), name="detail"),
    path("<uuid:pk>/row/", views.VMRowView.as_view(), name="row"),
    path("<uuid:pk>/summary/", views.VMSummaryView.as_view(), name="summary"),
    path("<uuid:pk>/screen.png", views.VMScreenView.as_view(), name="screen"),
    path("<uuid:pk>/start/", views.VMActionView.as_view(action="start"), name="start"),
    path("<uuid:pk>/stop/", views.VMActionView.as_view(action="stop"), name="stop"),
    path("<uuid:pk>/reboot/", views.VMActionView.as_view(action="reboot"), name="reboot"),
    path("<uuid:pk>/delete/", views.VMDeleteView.as_view(), name="delete"),
    path("<uuid:pk>/create-image/", views.VMCaptureView.as_view(), name="capture"),
    path("<uuid:pk>/export-ova/", views.VMExportView.as_view(), name="export"),
    path("boot-checks/images/<uuid:pk>/", views.BootCheckStartView.as_view(), name="boot_check_start"),
    path("boot-checks/images/<uuid:pk>/panel/", views.BootCheckPanelView.as_view(), name="boot_check_panel"),
    path("boot-checks/<uuid:pk>/screen.png", views.BootCheckScreenView.as_view(), name="boot_check_screen"),
    path(
        "boot-checks/<uuid:pk>/thumbnail.png",
        views.BootCheckScreenView.as_view(field="thumbnail"),
        name="boot_check_thumbnail",
    ),
]
