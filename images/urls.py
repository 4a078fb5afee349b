from django.urls import path
from django.utils.translation import gettext_lazy as _

from imageconsole.views import EmptyPage

app_name = "images"

urlpatterns = [
    path(
        "",
        EmptyPage.as_view(title=_("Images"), text=_("No images yet. Import an image to get started.")),
        name="list",
    ),
    path(
        "iso/",
        EmptyPage.as_view(title=_("ISO images"), text=_("No ISO images yet. Import an ISO image to get started.")),
        name="iso_list",
    ),
]
