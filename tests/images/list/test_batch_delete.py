"""Batch delete through the console: a confirmation listing the rows, one POST, a result per image."""

import re

from images.models import Image


def test_confirmation_lists_the_selected_rows_and_says_which_will_be_skipped(
    owner_client, tenant, make_image
):
    a = make_image(tenant, name="alpha")
    b = make_image(tenant, name="busy", status="uploading")
    response = owner_client.get(f"/images/batch-delete/?ids={a.pk}&ids={b.pk}&next=/images/")
    body = response.content.decode()
    assert response.status_code == 200
    assert re.findall(r'data-testid="batch-confirm-row" data-image-id="([^"]+)"', body) == [
        str(a.pk),
        str(b.pk),
    ]
    assert "Importing: will be skipped" in body
    assert Image.objects.filter(status="deleted").count() == 0  # GET changes nothing


def test_post_deletes_and_reports_each_image(owner_client, tenant, make_image):
    a = make_image(tenant, name="alpha")
    b = make_image(tenant, name="busy", status="uploading")
    response = owner_client.post(
        "/images/batch-delete/",
        {"ids": [str(a.pk), str(b.pk)], "next": "/images/?q=a"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response["HX-Trigger"] == "images-changed"
    assert f'data-image-id="{a.pk}" data-deleted="yes"' in body
    assert f'data-image-id="{b.pk}" data-deleted="no"' in body and "only available or failed" in body
    # Without htmx: one message each for the deleted and the skipped, and back to the list as it was.
    c = make_image(tenant, name="gamma")
    response = owner_client.post(
        "/images/batch-delete/", {"ids": [str(c.pk), str(b.pk)], "next": "/images/?q=a"}
    )
    assert response.status_code == 302 and response["Location"] == "/images/?q=a"
    page = owner_client.get(response["Location"]).content.decode()
    assert "1 image moved to the recycle bin." in page and "1 image was not deleted: busy" in page


def test_all_matching_the_filter(owner_client, tenant, make_image):
    for n in range(30):
        make_image(tenant, name=f"win-{n}", os_type="windows")
    make_image(tenant, name="linux-keep", os_type="linux")
    body = owner_client.get("/images/batch-delete/?all=1&os_type=windows&tab=self").content.decode()
    assert "Delete all 30 images matching the current filter?" in body
    assert 'name="os_type" value="windows"' in body
    owner_client.post("/images/batch-delete/", {"all": "1", "os_type": "windows", "tab": "self"})
    assert set(Image.objects.exclude(status="deleted").values_list("name", flat=True)) == {"linux-keep"}


def test_nothing_selected_or_a_viewer_changes_nothing(owner_client, subaccount_client, tenant, make_image):
    image = make_image(tenant)
    response = owner_client.post("/images/batch-delete/", {})
    assert response.status_code == 400 and "Select at least one image" in response.content.decode()
    assert subaccount_client.post("/images/batch-delete/", {"ids": [str(image.pk)]}).status_code == 403
    image.refresh_from_db()
    assert image.status == "available"
