from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter(use_regex_path=False)
router.register("project-groups", api.ProjectGroupViewSet, basename="api-project-group")
router.register("operation-log", api.OperationLogViewSet, basename="api-operation-log")

urlpatterns = [
    path("whoami/", api.WhoAmIView.as_view(), name="api-whoami"),
    *router.urls,
]
