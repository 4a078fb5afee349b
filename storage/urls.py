from django.urls import path
from django.utils.translation import gettext_lazy as _

from imageconsole.views import EmptyPage

app_name = "storage"

urlpatterns = [
    path(
        "",
        EmptyPage.as_view(title=_("Storages"), text=_("No image storage is configured. Ask a platform administrator to add one.")),
        name="list",
    ),
]
