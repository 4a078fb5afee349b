"""Tenant A's people never see tenant B's project groups, logs or members: not in lists, and another
tenant's object answers 404 on every view that takes an id."""

import pytest

from tenants import services


@pytest.fixture
def b_group(other_tenant):
    return services.project_group_create(tenant=other_tenant, name="globex-secret-group")


@pytest.fixture
def b_log(other_tenant, b_group):
    return services.log(action="image.delete", tenant=other_tenant, target_name="globex-secret-image")


@pytest.mark.parametrize("who", ["owner_client", "subaccount_client", "manager_client"])
def test_lists_show_nothing_of_another_tenant(request, who, b_group, b_log, tenant):
    client = request.getfixturevalue(who)
    services.project_group_create(tenant=tenant, name="acme-group")
    for url in ["/tenants/project-groups/", "/tenants/operation-log/", "/tenants/members/", "/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert "globex" not in body, url
    assert "acme-group" in client.get("/tenants/project-groups/").content.decode()


@pytest.mark.parametrize("who", ["owner_client", "subaccount_client", "manager_client"])
@pytest.mark.parametrize("suffix", ["edit/", "delete/"])
def test_another_tenants_group_is_not_found(request, who, suffix, b_group):
    client = request.getfixturevalue(who)
    url = f"/tenants/project-groups/{b_group.pk}/{suffix}"
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "stolen"}).status_code in (403, 404)
    b_group.refresh_from_db()
    assert b_group.name == "globex-secret-group"


def test_owner_cannot_touch_another_tenants_group(owner_client, b_group):
    url = f"/tenants/project-groups/{b_group.pk}/edit/"
    assert owner_client.post(url, {"name": "stolen"}).status_code == 404
    assert owner_client.post(f"/tenants/project-groups/{b_group.pk}/delete/").status_code == 404
    b_group.refresh_from_db()
    assert b_group.name == "globex-secret-group"


def test_cannot_switch_into_a_tenant_one_is_not_a_member_of(owner_client, other_tenant, b_group):
    response = owner_client.post("/tenants/switch/", {"tenant": other_tenant.pk})
    assert response.status_code == 302
    assert "globex" not in owner_client.get("/tenants/project-groups/").content.decode()


def test_member_of_two_tenants_switches_between_them(owner_client, owner, other_tenant, b_group):
    services.membership_add(tenant=other_tenant, user=owner, role="subaccount")
    page = owner_client.get("/").content.decode()
    assert 'data-testid="tenant-switcher"' in page
    owner_client.post("/tenants/switch/", {"tenant": other_tenant.pk})
    assert "globex-secret-group" in owner_client.get("/tenants/project-groups/").content.decode()


def test_platform_administrator_sees_every_tenant(admin_client, tenant, other_tenant, b_group):
    page = admin_client.get("/").content.decode()
    assert "acme" in page and "globex" in page  # both in the tenant switcher
    admin_client.post("/tenants/switch/", {"tenant": other_tenant.pk})
    assert "globex-secret-group" in admin_client.get("/tenants/project-groups/").content.decode()


def test_subaccount_limited_to_project_groups_sees_only_those(tenant, make_user, client):
    visible = services.project_group_create(tenant=tenant, name="team-visible")
    services.project_group_create(tenant=tenant, name="team-hidden")
    user = make_user("scoped")
    services.membership_add(tenant=tenant, user=user, project_groups=[visible])
    client.force_login(user)
    body = client.get("/tenants/project-groups/").content.decode()
    assert "team-visible" in body and "team-hidden" not in body


def test_user_without_tenant_is_told_so(make_user, client):
    client.force_login(make_user("loner"))
    response = client.get("/")
    assert response.status_code == 403
    assert "not a member of any tenant" in response.content.decode()
