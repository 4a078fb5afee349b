from django.urls import path
from rest_framework.routers import SimpleRouter

from .api import tus
from .api.views import ImageFileAPIView, ImageViewSet
from .downloads import api as downloads

router = SimpleRouter(use_regex_path=False)
router.register("images", ImageViewSet, basename="api-image")

urlpatterns = [
    # Before the router: "export.xlsx" would otherwise be taken for an image id.
    path("images/export.xlsx", ImageViewSet.as_view({"get": "export"}), name="api-image-export"),
    # DESIGN.md's fixed points have no trailing slash.
    path("images/<uuid:pk>/file", ImageFileAPIView.as_view(), name="api-image-file"),
    path("images/<uuid:pk>/cancel", ImageViewSet.as_view({"post": "cancel"}), name="api-image-cancel"),
    path(
        "images/<uuid:pk>/download-links",
        downloads.ImageDownloadLinksAPIView.as_view(),
        name="api-image-download-links",
    ),
    path(
        "images/<uuid:pk>/download-links/<uuid:link_pk>",
        downloads.ImageDownloadLinkAPIView.as_view(),
        name="api-image-download-link",
    ),
    path("images/<uuid:pk>/exports", downloads.ImageExportsAPIView.as_view(), name="api-image-exports"),
    path("exports/", downloads.ExportListAPIView.as_view(), name="api-exports"),
    path("exports/<uuid:pk>", downloads.ExportAPIView.as_view(), name="api-export"),
    path(
        "exports/<uuid:pk>/download-links",
        downloads.ExportDownloadLinksAPIView.as_view(),
        name="api-export-download-links",
    ),
    path("uploads/", tus.UploadCollectionView.as_view(), name="api-uploads"),
    path("uploads/<uuid:pk>", tus.UploadView.as_view(), name="api-upload"),
    *router.urls,
]
