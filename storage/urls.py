from django.urls import path

from . import views

app_name = "storage"

urlpatterns = [
    path("", views.StorageListView.as_view(), name="list"),
]
