"""The row actions' pages: forms with errors next to their fields, confirmations, redirects back."""

from images.models import Image
from tenants.models import OperationLog


def test_edit_name_and_remarks(owner_client, tenant, make_image):
    image = make_image(tenant, name="old", status="uploading")
    assert 'value="old"' in owner_client.get(f"/images/{image.pk}/edit/").content.decode()
    response = owner_client.post(f"/images/{image.pk}/edit/", {"name": "bad/name", "description": "x"})
    assert response.status_code == 400
    assert 'data-error-for="name"' in response.content.decode()
    response = owner_client.post(
        f"/images/{image.pk}/edit/", {"name": "new (v2)", "description": "remarks", "next": "/images/?q=new"}
    )
    assert response.status_code == 302 and response["Location"] == "/images/?q=new"
    image.refresh_from_db()
    assert (image.name, image.description) == ("new (v2)", "remarks")


def test_next_must_be_local(owner_client, tenant, make_image):
    image = make_image(tenant)
    response = owner_client.post(
        f"/images/{image.pk}/edit/", {"name": "n", "next": "https://evil.example/steal"}
    )
    assert response.status_code == 302 and not response["Location"].startswith("https://evil")


def test_labels(owner_client, tenant, make_image):
    image = make_image(tenant)
    response = owner_client.post(f"/images/{image.pk}/labels/", {"labels": "web, db, web"})
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.labels == ["web", "db"]
    response = owner_client.post(f"/images/{image.pk}/labels/", {"labels": "x" * 70})
    assert response.status_code == 400 and 'data-error-for="labels"' in response.content.decode()


def test_sharing_form(owner_client, admin_client, tenant, other_tenant, make_image):
    image = make_image(tenant)
    body = owner_client.get(f"/images/{image.pk}/sharing/").content.decode()
    assert 'value="global"' not in body and 'value="tenants"' in body
    response = owner_client.post(f"/images/{image.pk}/sharing/", {"sharing": "tenants"})
    assert response.status_code == 400 and 'data-error-for="shared_with"' in response.content.decode()
    response = owner_client.post(f"/images/{image.pk}/sharing/", {"sharing": "global"})
    assert response.status_code == 400
    owner_client.post(
        f"/images/{image.pk}/sharing/", {"sharing": "tenants", "shared_with": [other_tenant.pk]}
    )
    image.refresh_from_db()
    assert image.sharing == "tenants" and list(image.shared_with.all()) == [other_tenant]
    admin_client.post("/tenants/switch/", {"tenant": tenant.pk})
    assert 'value="global"' in admin_client.get(f"/images/{image.pk}/sharing/").content.decode()
    admin_client.post(f"/images/{image.pk}/sharing/", {"sharing": "global"})
    image.refresh_from_db()
    assert image.sharing == "global"


def test_enable_and_disable_are_post_only(owner_client, tenant, make_image):
    image = make_image(tenant)
    assert owner_client.get(f"/images/{image.pk}/enabled/").status_code == 405
    owner_client.post(f"/images/{image.pk}/enabled/", {"enabled": "0"})
    image.refresh_from_db()
    assert image.enabled is False
    owner_client.post(f"/images/{image.pk}/enabled/", {"enabled": "1"})
    image.refresh_from_db()
    assert image.enabled is True


def test_delete_confirms_then_moves_to_the_recycle_bin(owner_client, owner, tenant, make_image):
    image = make_image(tenant, name="old")
    assert "recycle bin" in owner_client.get(f"/images/{image.pk}/delete/").content.decode()
    image.refresh_from_db()
    assert image.status == "available"
    response = owner_client.post(f"/images/{image.pk}/delete/")
    assert response.status_code == 302
    image.refresh_from_db()
    assert (image.status, image.deleted_by) == ("deleted", owner)
    assert OperationLog.objects.filter(target_id=str(image.pk), action="image.delete").count() == 1


def test_delete_of_an_importing_image_says_why_not(owner_client, tenant, make_image):
    image = make_image(tenant, status="uploading")
    # The row offers no delete for it; a hand-made POST gets a reason and changes nothing.
    response = owner_client.post(f"/images/{image.pk}/delete/")
    assert response.status_code == 409
    assert "Importing" in response.content.decode()
    assert Image.objects.get(pk=image.pk).status == "uploading"


def test_viewer_gets_403_on_own_tenants_images(subaccount_client, tenant, make_image):
    image = make_image(tenant)
    for url in ["edit/", "labels/", "sharing/", "delete/"]:
        assert subaccount_client.get(f"/images/{image.pk}/{url}").status_code == 403, url
    assert subaccount_client.post(f"/images/{image.pk}/enabled/", {"enabled": "0"}).status_code == 403
