from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = _("Images")

    def ready(self):
        from tenants.oplog import register_actions

        # The operation log's words for this app's action codes.
        register_actions(
            {
                "image.import": pgettext_lazy("Operation", "Import image"),
                "image.cancel": pgettext_lazy("Operation", "Cancel import"),
                "image.update": pgettext_lazy("Operation", "Edit image"),
                "image.enable": pgettext_lazy("Operation", "Enable image"),
                "image.disable": pgettext_lazy("Operation", "Disable image"),
                "image.share": pgettext_lazy("Operation", "Change sharing"),
                "image.delete": pgettext_lazy("Operation", "Delete image"),
                "image.restore": pgettext_lazy("Operation", "Restore image"),
                "image.expunge": pgettext_lazy("Operation", "Destroy image"),
            }
        )
        from storage.hooks import register_delete_blockers

        from .services.storage_data import images_on_storage

        register_delete_blockers(images_on_storage)
        # Registers the exports' and links' part of an expunge with images.hooks.
        from .downloads import services  # noqa: F401
