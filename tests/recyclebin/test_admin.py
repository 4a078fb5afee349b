"""Django admin for platform administrators: every tenant's images in the recycle bin, with restore and
expunge actions calling the same services as the console."""

from images.models import Image
from images.services import image_delete


def test_admin_lists_every_tenants_bin_and_restores_or_expunges(
    admin_client, tenant, other_tenant, owner, make_image, run_jobs, django_capture_on_commit_callbacks
):
    mine = image_delete(image=make_image(tenant, name="acme-old"), actor=owner)
    theirs = image_delete(image=make_image(other_tenant, name="globex-old"), actor=None)
    make_image(tenant, name="acme-live")
    page = admin_client.get("/admin/recyclebin/binnedimage/").content.decode()
    assert "acme-old" in page and "globex-old" in page and "acme-live" not in page
    response = admin_client.post(
        "/admin/recyclebin/binnedimage/", {"action": "restore", "_selected_action": [mine.pk]}, follow=True
    )
    assert "1 image restored." in response.content.decode()
    assert Image.objects.get(pk=mine.pk).status == "available"
    # Destroying takes two steps: a confirmation page naming the images, then the POST.
    confirm = admin_client.post(
        "/admin/recyclebin/binnedimage/", {"action": "expunge", "_selected_action": [theirs.pk]}
    )
    body = confirm.content.decode()
    assert confirm.status_code == 200 and "cannot be undone" in body and "globex-old" in body
    assert Image.objects.get(pk=theirs.pk).status == "deleted"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/recyclebin/binnedimage/",
            {"action": "expunge", "_selected_action": [theirs.pk], "post": "yes"},
            follow=True,
        )
    assert "1 image is being destroyed." in response.content.decode()
    assert run_jobs(["maintenance"]) == 0
    assert not Image.objects.filter(pk=theirs.pk).exists()


def test_tenants_cannot_reach_the_admin(owner_client):
    assert owner_client.get("/admin/recyclebin/binnedimage/").status_code == 302
