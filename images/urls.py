from django.urls import path

from .downloads import views as downloads
from .list_urls import urlpatterns as list_urlpatterns
from .views import detail, imports, shares

app_name = "images"

# The list, its row endpoint, batch delete, the Excel export, the guide and the row actions live in
# list_urls.py; the import wizard, the upload page, cancel and the detail page are here.
urlpatterns = [
    *list_urlpatterns,
    path("import/", imports.ImageImportView.as_view(), name="import"),
    path("<uuid:pk>/", detail.ImageDetailView.as_view(), name="detail"),
    path("<uuid:pk>/summary/", detail.ImageSummaryView.as_view(), name="summary"),
    path("<uuid:pk>/upload/", imports.ImageUploadView.as_view(), name="upload"),
    path("<uuid:pk>/cancel/", imports.ImageCancelView.as_view(), name="cancel"),
    path("<uuid:pk>/download/", downloads.DownloadDialogView.as_view(), name="download"),
    path("<uuid:pk>/download/<uuid:link_pk>/revoke/", downloads.LinkRevokeView.as_view(), name="link_revoke"),
    path("<uuid:pk>/export/", downloads.ExportDialogView.as_view(), name="export_image"),
    path("exported/", downloads.ExportedListView.as_view(), name="exported"),
    path("exports/<uuid:pk>/download/", downloads.ExportDownloadView.as_view(), name="export_download"),
    path("exports/<uuid:pk>/delete/", downloads.ExportDeleteView.as_view(), name="export_delete"),
    path("shared-with-us/", shares.SharedWithUsView.as_view(), name="shared_with_us"),
    path("<uuid:pk>/share-answer/", shares.ShareAnswerView.as_view(), name="share_answer"),
]
