from django.urls import path

from . import views

app_name = "tenants"

urlpatterns = [
    path("switch/", views.SwitchTenantView.as_view(), name="switch"),
    path("project-groups/", views.ProjectGroupListView.as_view(), name="project_groups"),
    path("project-groups/new/", views.ProjectGroupCreateView.as_view(), name="project_group_create"),
    path("project-groups/<int:pk>/edit/", views.ProjectGroupEditView.as_view(), name="project_group_edit"),
    path(
        "project-groups/<int:pk>/delete/", views.ProjectGroupDeleteView.as_view(), name="project_group_delete"
    ),
    path("members/", views.MemberListView.as_view(), name="members"),
    path("operation-log/", views.OperationLogView.as_view(), name="operation_log"),
]
