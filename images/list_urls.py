"""URLs of the image list and its actions; images/urls.py includes them in the `images` namespace."""

from django.urls import path

from .views import image_actions, image_list

urlpatterns = [
    path("", image_list.ImageListView.as_view(), name="list"),
    path("iso/", image_list.IsoImageListView.as_view(), name="iso_list"),
    path("guide/", image_list.CustomImageGuideView.as_view(), name="guide"),
    path("export.xlsx", image_list.ImageExportView.as_view(), name="export"),
    path("columns/", image_list.ListColumnsView.as_view(), name="columns"),
    path("batch-delete/", image_list.BatchDeleteView.as_view(), name="batch_delete"),
    path("<uuid:pk>/row/", image_list.ImageRowView.as_view(), name="row"),
    path("<uuid:pk>/edit/", image_actions.ImageEditView.as_view(), name="edit"),
    path("<uuid:pk>/labels/", image_actions.ImageLabelsView.as_view(), name="labels"),
    path("<uuid:pk>/sharing/", image_actions.ImageSharingView.as_view(), name="sharing"),
    path("<uuid:pk>/enabled/", image_actions.ImageEnableView.as_view(), name="enable"),
    path("<uuid:pk>/delete/", image_actions.ImageDeleteView.as_view(), name="delete"),
]
