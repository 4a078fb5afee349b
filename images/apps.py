from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = _("Images")

    def ready(self):
        from storage.hooks import register_delete_blockers

        from .services.storage_data import images_on_storage

        register_delete_blockers(images_on_storage)
        # Registers the exports' and links' part of an expunge with images.hooks.
        from .downloads import services  # noqa: F401
