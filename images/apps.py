from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = _("Images")

    def ready(self):
        # Registers the exports' and links' part of an expunge with images.hooks.
        from .downloads import services  # noqa: F401
