from django.urls import path

from . import api

urlpatterns = [
    path("whoami/", api.WhoAmIView.as_view(), name="api-whoami"),
]
