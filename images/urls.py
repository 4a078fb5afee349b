from django.urls import path  # noqa: F401

from .list_urls import urlpatterns as list_urlpatterns

app_name = "images"

# The list, its row endpoint, batch delete, the Excel export, the guide and the row actions live in
# list_urls.py; the import wizard, the detail page and the upload endpoints go here beside them.
urlpatterns = [
    *list_urlpatterns,
]
