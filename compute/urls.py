from django.urls import path
from django.utils.translation import gettext_lazy as _

from tenants.views import EmptyPage

app_name = "compute"

urlpatterns = [
    path(
        "",
        EmptyPage.as_view(title=_("Virtual machines"), text=_("No virtual machines yet. Create one from an available image.")),
        name="list",
    ),
]
