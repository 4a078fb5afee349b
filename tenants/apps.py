from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants")

    def ready(self):
        from .oplog import register_actions

        # The operation log's words for this app's action codes.
        register_actions(
            {
                "tenant.create": pgettext_lazy("Operation", "Create tenant"),
                "tenant.update": pgettext_lazy("Operation", "Change tenant"),
                "membership.add": pgettext_lazy("Operation", "Add member"),
                "project_group.create": pgettext_lazy("Operation", "Create project group"),
                "project_group.update": pgettext_lazy("Operation", "Change project group"),
                "project_group.delete": pgettext_lazy("Operation", "Delete project group"),
                "quota.update": pgettext_lazy("Operation", "Change quota"),
            }
        )
