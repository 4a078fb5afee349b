from django.urls import path

from . import api

urlpatterns = [
    path("storages/", api.StorageListAPIView.as_view(), name="api-storage-list"),
    path("storages/<int:pk>/", api.StorageDetailAPIView.as_view(), name="api-storage-detail"),
]
