from django.urls import path

from . import views

app_name = "recyclebin"

urlpatterns = [
    path("", views.RecycleBinView.as_view(), name="list"),
    path("batch/restore/", views.BatchView.as_view(action="restore"), name="batch_restore"),
    path("batch/destroy/", views.BatchView.as_view(action="destroy"), name="batch_destroy"),
    path("<uuid:pk>/restore/", views.RestoreView.as_view(), name="restore"),
    path("<uuid:pk>/destroy/", views.DestroyView.as_view(), name="destroy"),
]
