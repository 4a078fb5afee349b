from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecyclebinConfig(AppConfig):
    name = "recyclebin"
    verbose_name = _("Recycle bin")
