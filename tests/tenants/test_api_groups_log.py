"""Project groups and the operation log over the JSON API, scoped like the console."""

import pytest

from tenants import services
from tenants.models import OperationLog, ProjectGroup


@pytest.fixture
def token_for(db):
    def make(user):
        _token, key = services.api_token_create(user=user)
        return {"HTTP_AUTHORIZATION": f"Token {key}"}

    return make


def test_project_groups_crud_for_an_owner(client, owner, token_for):
    auth = token_for(owner)
    created = client.post("/api/v1/project-groups/", {"name": "web", "description": "front"}, **auth)
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    listed = client.get("/api/v1/project-groups/", **auth).json()
    assert listed["count"] == 1 and listed["results"][0]["name"] == "web"
    patched = client.patch(
        f"/api/v1/project-groups/{pk}/", {"name": "web-2"}, content_type="application/json", **auth
    )
    assert patched.status_code == 200 and patched.json()["name"] == "web-2"
    assert ProjectGroup.objects.get(pk=pk).description == "front"
    assert client.delete(f"/api/v1/project-groups/{pk}/", **auth).status_code == 204
    assert not ProjectGroup.objects.filter(pk=pk).exists()
    actions = set(OperationLog.objects.values_list("action", flat=True))
    assert {"project_group.create", "project_group.update", "project_group.delete"} <= actions


def test_duplicate_or_empty_names_are_400_with_the_reason(client, owner, tenant, token_for):
    services.project_group_create(tenant=tenant, name="web")
    auth = token_for(owner)
    response = client.post("/api/v1/project-groups/", {"name": "web"}, **auth)
    assert response.status_code == 400
    assert "already has a project group" in response.json()["name"][0]
    assert client.post("/api/v1/project-groups/", {"name": "  "}, **auth).status_code == 400


def test_viewer_reads_but_cannot_change(client, subaccount, tenant, token_for):
    group = services.project_group_create(tenant=tenant, name="web")
    auth = token_for(subaccount)
    assert client.get("/api/v1/project-groups/", **auth).json()["count"] == 1
    response = client.post("/api/v1/project-groups/", {"name": "new"}, **auth)
    assert response.status_code == 403 and "not change" in response.json()["detail"]
    assert client.delete(f"/api/v1/project-groups/{group.pk}/", **auth).status_code == 403
    assert ProjectGroup.objects.filter(pk=group.pk).exists()


def test_another_tenants_group_and_log_are_not_found(client, owner, other_tenant, token_for):
    theirs = services.project_group_create(tenant=other_tenant, name="secret")
    entry = services.log(action="image.delete", tenant=other_tenant, target_name="their-image")
    auth = token_for(owner)
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(f"/api/v1/project-groups/{theirs.pk}/", **auth)
        assert response.status_code == 404, method
    assert client.get(f"/api/v1/operation-log/{entry.pk}/", **auth).status_code == 404
    assert "their-image" not in client.get("/api/v1/operation-log/", **auth).content.decode()
    assert client.get("/api/v1/project-groups/abc/", **auth).status_code == 404


def test_operation_log_filters(client, owner, tenant, token_for):
    services.log(action="image.delete", tenant=tenant, target_name="a", result="failure")
    services.log(action="image.update", tenant=tenant, target_name="b")
    auth = token_for(owner)
    body = client.get("/api/v1/operation-log/?result=failure", **auth).json()
    assert [row["target_name"] for row in body["results"]] == ["a"]
    body = client.get("/api/v1/operation-log/?action=image.update", **auth).json()
    assert [row["target_name"] for row in body["results"]] == ["b"]
    bad = client.get("/api/v1/operation-log/?result=maybe", **auth)
    assert bad.status_code == 400 and "result" in bad.json()
