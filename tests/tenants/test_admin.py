import django_rq


def test_admin_lists_tenants_and_memberships(admin_client, tenant, other_tenant):
    response = admin_client.get("/admin/tenants/tenant/?q=acme")
    assert response.status_code == 200
    body = response.content.decode()
    assert "acme" in body and "globex" not in body
    assert admin_client.get("/admin/tenants/membership/?role__exact=owner").status_code == 200
    for model in ["projectgroup", "quota", "operationlog", "apitoken"]:
        assert admin_client.get(f"/admin/tenants/{model}/").status_code == 200, model


def test_admin_adds_a_tenant_with_a_quota(admin_client, db):
    from tenants.models import Quota, Tenant

    response = admin_client.post(
        "/admin/tenants/tenant/add/",
        {
            "name": "initech",
            "description": "",
            "is_active": "on",
            "quota-TOTAL_FORMS": "1",
            "quota-INITIAL_FORMS": "0",
            "quota-MIN_NUM_FORMS": "0",
            "quota-MAX_NUM_FORMS": "1",
            "quota-0-max_images": "5",
            "quota-0-max_bytes": "",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Quota.objects.get(tenant=Tenant.objects.get(name="initech")).max_images == 5


def test_rq_dashboard_shows_queues_to_staff_only(admin_client, owner_client, rq_redis):
    django_rq.get_queue("imports").enqueue("math.floor", 1.5)
    response = admin_client.get("/admin/rq/")
    assert response.status_code == 200
    body = response.content.decode()
    for queue in ["imports", "convert", "default", "maintenance"]:
        assert queue in body
    assert owner_client.get("/admin/rq/").status_code in (302, 403)


def test_jobs_run_through_a_real_worker(run_jobs, rq_redis):
    queue = django_rq.get_queue("default")
    job = queue.enqueue("math.floor", 2.5)
    assert run_jobs() == 0
    job.refresh()
    assert job.is_finished and job.return_value() == 2


def test_admin_user_list_shows_tenants_and_filters_by_them(admin_client, tenant, other_tenant):
    response = admin_client.get(f"/admin/auth/user/?memberships__tenant__id__exact={tenant.pk}")
    body = response.content.decode()
    assert response.status_code == 200
    assert "acme-owner" in body and "globex-owner" not in body
