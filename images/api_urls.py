from django.urls import path
from rest_framework.routers import SimpleRouter

from .api import tus
from .api.views import ImageFileAPIView, ImageViewSet

router = SimpleRouter(use_regex_path=False)
router.register("images", ImageViewSet, basename="api-image")

urlpatterns = [
    # Before the router: "export.xlsx" would otherwise be taken for an image id.
    path("images/export.xlsx", ImageViewSet.as_view({"get": "export"}), name="api-image-export"),
    # DESIGN.md's fixed points have no trailing slash.
    path("images/<uuid:pk>/file", ImageFileAPIView.as_view(), name="api-image-file"),
    path("images/<uuid:pk>/cancel", ImageViewSet.as_view({"post": "cancel"}), name="api-image-cancel"),
    path("uploads/", tus.UploadCollectionView.as_view(), name="api-uploads"),
    path("uploads/<uuid:pk>", tus.UploadView.as_view(), name="api-upload"),
    *router.urls,
]
