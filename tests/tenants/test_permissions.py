"""A sub-account without `manage` can look but not change anything."""

from tenants import services
from tenants.models import OperationLog, ProjectGroup


def test_viewer_cannot_create_edit_or_delete_project_groups(subaccount_client, tenant):
    group = services.project_group_create(tenant=tenant, name="ops")
    assert subaccount_client.get("/tenants/project-groups/new/").status_code == 403
    assert subaccount_client.post("/tenants/project-groups/new/", {"name": "new"}).status_code == 403
    assert (
        subaccount_client.post(f"/tenants/project-groups/{group.pk}/edit/", {"name": "x"}).status_code == 403
    )
    assert subaccount_client.post(f"/tenants/project-groups/{group.pk}/delete/").status_code == 403
    assert list(ProjectGroup.objects.filter(tenant=tenant).values_list("name", flat=True)) == ["ops"]
    page = subaccount_client.get("/tenants/project-groups/").content.decode()
    assert "New project group" not in page and "/delete/" not in page


def test_manager_and_owner_can_change_and_it_is_logged(manager_client, owner_client, tenant):
    response = manager_client.post("/tenants/project-groups/new/", {"name": "ops", "description": "d"})
    assert response.status_code == 302
    group = ProjectGroup.objects.get(tenant=tenant, name="ops")
    owner_client.post(f"/tenants/project-groups/{group.pk}/edit/", {"name": "operations"})
    group.refresh_from_db()
    assert group.name == "operations"
    actions = list(OperationLog.objects.filter(tenant=tenant).values_list("action", "actor_name"))
    assert ("project_group.create", "acme-manager") in actions
    assert ("project_group.update", "acme-owner") in actions


def test_duplicate_group_name_is_refused_next_to_the_field(owner_client, tenant):
    services.project_group_create(tenant=tenant, name="ops")
    response = owner_client.post("/tenants/project-groups/new/", {"name": "ops"})
    assert response.status_code == 400
    assert 'data-error-for="name"' in response.content.decode()
    assert ProjectGroup.objects.filter(tenant=tenant).count() == 1


def test_operation_log_records_client_ip(owner_client, tenant):
    owner_client.post("/tenants/project-groups/new/", {"name": "ops"}, REMOTE_ADDR="10.1.2.3")
    entry = OperationLog.objects.get(action="project_group.create")
    assert entry.client_ip == "10.1.2.3"
    assert "10.1.2.3" in owner_client.get("/tenants/operation-log/").content.decode()
