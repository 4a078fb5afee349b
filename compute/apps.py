from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = _("Virtual machines")

    def ready(self):
        from images.hooks import register_before_expunge, register_detail_section

        from .sections import image_detail_section
        from .services.cache import cache_forget_image

        register_detail_section(image_detail_section)
        register_before_expunge(cache_forget_image)
