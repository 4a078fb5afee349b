"""The recycle bin page: the tenant's deleted images with their columns, filters, search, page sizes, an
empty state only when it is really empty, restore and destroy one at a time and in batch."""

from images.models import Image
from images.services import image_delete
from tenants.models import OperationLog


def _delete(image, user):
    return image_delete(image=image, actor=user)


def test_the_bin_shows_deleted_images_not_a_fixed_text(
    owner_client, owner, tenant, other_tenant, make_image, rq_redis
):
    web = _delete(
        make_image(tenant, name="web-01", os_type="linux", disk_format="raw", size=5 * 1024**3), owner
    )
    make_image(tenant, name="still-here")
    _delete(make_image(other_tenant, name="theirs"), other_tenant.memberships.first().user)
    page = owner_client.get("/recycle-bin/").content.decode()
    assert "The recycle bin is empty" not in page
    assert "web-01" in page and str(web.pk) in page
    assert "still-here" not in page and "theirs" not in page
    # Columns: system type, format, size, deleted time and by whom, until when it is kept.
    row = page[page.index(f'data-image-id="{web.pk}"') :]
    row = row[: row.index("</tr>")]
    cells = {
        "image-id": str(web.pk),
        'data-column="os_type">': "Linux",
        'data-column="disk_format">': "raw",
        'data-column="size" data-bytes="5368709120">': "5.0",
        'data-column="deleted" class="text-nowrap">': web.deleted_at.strftime("%Y-%m-%d %H:%M"),
        'data-column="deleted_by">': "acme-owner",
        'data-testid="image-purge-after">': web.purge_after.strftime("%Y-%m-%d %H:%M"),
    }
    for marker, text in cells.items():
        cell = row[row.index(marker) :]
        assert text in cell[: cell.index("</")], (marker, text)
    assert (
        "Images in the recycle bin no longer count against the quota's image count, but their size does"
        in page
    )
    assert "Deletion policy: delayed" in page and "3 days" in page


def test_under_never_the_bin_says_kept_until_destroyed(owner_client, owner, tenant, make_image, set_policy):
    set_policy("never")
    kept = _delete(make_image(tenant, name="kept"), owner)
    page = owner_client.get("/recycle-bin/").content.decode()
    row = page[page.index(f'data-image-id="{kept.pk}"') :]
    cell = row[row.index('data-testid="image-purge-after"') :]
    assert "Kept until destroyed" in cell[: cell.index("</td>")]


def test_empty_state_only_when_really_empty(owner_client, owner, tenant, make_image, rq_redis):
    assert "The recycle bin is empty." in owner_client.get("/recycle-bin/").content.decode()
    _delete(make_image(tenant, name="alpha"), owner)
    filtered = owner_client.get("/recycle-bin/?q=zzz").content.decode()
    assert "The recycle bin is empty." not in filtered and "No image in the recycle bin matches" in filtered


def test_filters_search_sorting_and_page_sizes(owner_client, owner, tenant, make_image, rq_redis):
    for n in range(25):
        _delete(make_image(tenant, name=f"lin-{n:02d}", os_type="linux"), owner)
    win = _delete(make_image(tenant, name="win-1", os_type="windows"), owner)
    page = owner_client.get("/recycle-bin/?os_type=windows").content.decode()
    assert "win-1" in page and "lin-00" not in page
    assert "win-1" in owner_client.get(f"/recycle-bin/?q={str(win.pk)[:8]}").content.decode()
    first = owner_client.get("/recycle-bin/?ordering=name").content.decode()
    assert first.count('data-testid="bin-row"') == 20 and "lin-00" in first and "win-1" not in first
    assert (
        owner_client.get("/recycle-bin/?page_size=50").content.decode().count('data-testid="bin-row"') == 26
    )
    assert owner_client.get("/recycle-bin/?page=x").status_code == 200


def test_restore_gives_back_the_status_it_had(owner_client, owner, tenant, make_image, rq_redis):
    ok = _delete(make_image(tenant, name="ok", enabled=False), owner)
    bad = _delete(make_image(tenant, name="bad", status="failed", error="boom"), owner)
    for image in (ok, bad):
        response = owner_client.post(f"/recycle-bin/{image.pk}/restore/", {"next": "/recycle-bin/"})
        assert response.status_code == 302 and response["Location"] == "/recycle-bin/"
    ok.refresh_from_db()
    bad.refresh_from_db()
    assert (ok.status, ok.enabled, ok.deleted_at, ok.purge_after) == ("available", False, None, None)
    assert bad.status == "failed"
    assert "“ok” was restored" in owner_client.get("/recycle-bin/").content.decode()
    assert OperationLog.objects.filter(action="image.restore", result="success").count() == 2


def test_destroy_confirms_then_expunges(
    owner_client, owner, tenant, make_image, run_jobs, django_capture_on_commit_callbacks
):
    image = _delete(make_image(tenant, name="old"), owner)
    confirm = owner_client.get(f"/recycle-bin/{image.pk}/destroy/").content.decode()
    assert "cannot be undone" in confirm
    assert Image.objects.get(pk=image.pk).status == "deleted"
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/recycle-bin/{image.pk}/destroy/")
    page = owner_client.get("/recycle-bin/").content.decode()
    assert "is being destroyed" in page and "Being destroyed" in page and "every 2500ms" in page
    assert run_jobs(["maintenance"]) == 0
    assert not Image.objects.filter(pk=image.pk).exists()
    assert "The recycle bin is empty." in owner_client.get("/recycle-bin/").content.decode()


def test_batch_restore_and_destroy_report_each_image(
    owner_client, owner, tenant, make_image, run_jobs, django_capture_on_commit_callbacks
):
    a, b, c = (_delete(make_image(tenant, name=n), owner) for n in ("a", "b", "c"))
    live = make_image(tenant, name="live")
    confirm = owner_client.get(
        f"/recycle-bin/batch/restore/?ids={a.pk}&ids={live.pk}", HTTP_HX_REQUEST="true"
    )
    body = confirm.content.decode()
    assert "Restore this image?" not in body and "Restore these 2 images?" in body and "live" not in body
    response = owner_client.post(
        "/recycle-bin/batch/restore/", {"ids": [a.pk, live.pk]}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response["HX-Trigger"] == "bin-changed"
    assert f'data-image-id="{a.pk}" data-done="yes"' in body
    assert f'data-image-id="{live.pk}" data-done="no"' in body and "Not found." in body
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/recycle-bin/batch/destroy/", {"ids": [b.pk, c.pk], "next": "/recycle-bin/"}
        )
    assert response.status_code == 302
    assert "2 images are being destroyed." in owner_client.get("/recycle-bin/").content.decode()
    assert run_jobs(["maintenance"]) == 0
    assert set(Image.objects.filter(tenant=tenant).values_list("name", flat=True)) == {"a", "live"}
    assert owner_client.post("/recycle-bin/batch/destroy/", {}).status_code == 400


def test_a_view_only_account_sees_the_bin_but_cannot_act(
    subaccount_client, owner, tenant, make_image, rq_redis
):
    image = _delete(make_image(tenant, name="kept"), owner)
    page = subaccount_client.get("/recycle-bin/").content.decode()
    assert "kept" in page and 'data-testid="row-restore"' not in page
    assert subaccount_client.post(f"/recycle-bin/{image.pk}/restore/").status_code == 403
    assert subaccount_client.post(f"/recycle-bin/{image.pk}/destroy/").status_code == 403
    assert subaccount_client.post("/recycle-bin/batch/destroy/", {"ids": [image.pk]}).status_code == 403
    assert Image.objects.get(pk=image.pk).status == "deleted"
