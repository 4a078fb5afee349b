from django.urls import re_path

from . import identity
from .image import urls as image_urls

# Both trailing-slash forms are served: clients build URLs with and without one.
identity_urlpatterns = [
    re_path(r"^$", identity.VersionsView.as_view(), name="openstack-identity-versions"),
    re_path(r"^v3/?$", identity.V3View.as_view(), name="openstack-identity-v3"),
    re_path(r"^v3/auth/tokens/?$", identity.TokensView.as_view(), name="openstack-identity-tokens"),
]

image_urlpatterns = image_urls.urlpatterns

__all__ = ["identity_urlpatterns", "image_urlpatterns"]
