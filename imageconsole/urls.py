from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from images.downloads.public import download_file
from openstack.urls import identity_urlpatterns, image_urlpatterns

from . import views

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("health/", views.HealthPanelView.as_view(), name="health"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("tenants/", include("tenants.urls")),
    path("images/", include("images.urls")),
    # A download link: no login, the token is the credential (DESIGN.md's fixed points).
    path("d/<str:token>/<str:filename>", download_file, name="download-file"),
    path("storages/", include("storage.urls")),
    path("recycle-bin/", include("recyclebin.urls")),
    path("vms/", include("compute.urls")),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("tenants.api_urls")),
    path("api/v1/", include("storage.api_urls")),
    path("api/v1/", include("images.api_urls")),
    path("api/v1/", include("compute.api_urls")),
    path("api/v1/", include("recyclebin.api_urls")),
    path("openstack/identity/", include(identity_urlpatterns)),
    path("openstack/image/", include(image_urlpatterns)),
]

handler403 = "imageconsole.errors.permission_denied"
handler404 = "imageconsole.errors.page_not_found"
handler500 = "imageconsole.errors.server_error"
