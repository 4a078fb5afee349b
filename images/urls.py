from django.urls import path

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
    path("shared-with-us/", shares.SharedWithUsView.as_view(), name="shared_with_us"),
    path("<uuid:pk>/share-answer/", shares.ShareAnswerView.as_view(), name="share_answer"),
]
