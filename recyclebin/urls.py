from django.urls import path
from django.utils.translation import gettext_lazy as _

from tenants.views import EmptyPage

app_name = "recyclebin"

urlpatterns = [
    path(
        "",
        EmptyPage.as_view(title=_("Recycle bin"), text=_("The recycle bin is empty. Deleted images wait here until they are restored or expunged.")),
        name="list",
    ),
]
