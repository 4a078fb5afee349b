from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OpenstackConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "openstack"
    verbose_name = _("OpenStack API")
