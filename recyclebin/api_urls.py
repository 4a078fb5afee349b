from django.urls import path

from . import api

# DESIGN.md's fixed points: no trailing slash on the actions.
urlpatterns = [
    path("recycle-bin/", api.RecycleBinAPIView.as_view(), name="api-recyclebin"),
    path("images/<uuid:pk>/restore", api.RestoreAPIView.as_view(), name="api-recyclebin-restore"),
    path("images/<uuid:pk>/expunge", api.ExpungeAPIView.as_view(), name="api-recyclebin-expunge"),
]
