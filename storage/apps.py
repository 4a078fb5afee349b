from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class StorageConfig(AppConfig):
    name = "storage"
    verbose_name = _("Image storage")

    def ready(self):
        from tenants.oplog import register_actions

        # The operation log's words for this app's action codes.
        register_actions(
            {
                "storage.create": pgettext_lazy("Operation", "Add storage"),
                "storage.update": pgettext_lazy("Operation", "Change storage"),
                "storage.update_password": pgettext_lazy("Operation", "Change storage password"),
                "storage.configure": pgettext_lazy("Operation", "Configure storage"),
                "storage.reconnect": pgettext_lazy("Operation", "Reconnect storage"),
                "storage.delete": pgettext_lazy("Operation", "Delete storage"),
                "storage.cleanup": pgettext_lazy("Operation", "Clean up storage"),
                "image.sync": pgettext_lazy("Operation", "Sync image"),
                "image.migrate": pgettext_lazy("Operation", "Migrate image"),
            }
        )
