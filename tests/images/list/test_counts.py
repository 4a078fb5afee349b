"""The list's total comes from ImageCount, which database triggers keep exact through every kind of write
(creates, bulk creates, saves, bulk updates, deletes), and the page shows it."""

from django.db.models import Count

from images.models import Image, ImageCount
from images.services import image_batch_delete


def counted():
    return {(row.tenant_id, row.kind, row.status): row.n for row in ImageCount.objects.all() if row.n}


def actual():
    rows = Image.objects.values("tenant_id", "kind", "status").annotate(n=Count("pk"))
    return {(row["tenant_id"], row["kind"], row["status"]): row["n"] for row in rows}


def test_counts_follow_every_write(tenant, other_tenant, make_image):
    images = [make_image(tenant) for _ in range(5)] + [make_image(other_tenant, kind=Image.Kind.ISO)]
    Image.objects.bulk_create(
        [Image(tenant=tenant, name=f"bulk-{n}", status=Image.Status.FAILED) for n in range(4)]
    )
    assert counted() == actual()

    Image.objects.filter(tenant=tenant, status=Image.Status.FAILED).update(status=Image.Status.DELETING)
    images[0].kind = Image.Kind.VOLUME
    images[0].save()
    images[1].status = Image.Status.DELETED
    images[1].save(update_fields=["status"])
    images[2].progress = 50  # not counted: no change
    images[2].save()
    images[2].os_type = Image.OSType.WINDOWS
    images[2].save(update_fields=["os_type"])
    Image.objects.filter(pk=images[3].pk).update(tenant=other_tenant)
    images[4].delete()
    assert counted() == actual()

    Image.objects.all().delete()
    assert counted() == {}


def test_the_list_total_follows_a_batch_delete(owner_client, owner, tenant, make_image):
    images = [make_image(tenant) for _ in range(7)] + [make_image(tenant, status=Image.Status.UPLOADING)]
    assert 'data-testid="result-count">8 images</span>' in owner_client.get("/images/").content.decode()

    image_batch_delete(
        tenant=tenant,
        scope=Image.objects.filter(tenant=tenant),
        image_ids=[image.pk for image in images[:3]],
        actor=owner,
    )
    assert 'data-testid="result-count">5 images</span>' in owner_client.get("/images/").content.decode()
    assert counted() == actual()


def test_filtered_totals(owner_client, tenant, make_image):
    for os_type, status, n in [
        ("linux", "available", 3),
        ("windows", "available", 2),
        ("windows", "failed", 4),
    ]:
        for _ in range(n):
            make_image(tenant, os_type=os_type, status=status)
    make_image(tenant, os_type="windows", status="failed", platform="Windows")  # another platform

    def total(query):
        page = owner_client.get(f"/images/?{query}").content.decode()
        return page.split('data-testid="result-count">')[1].split("<")[0]

    assert total("os_type=windows") == "7 images"
    assert total("status=failed&os_type=windows") == "5 images"
    # A filter the table does not hold (platform): counted from the images.
    assert total("status=failed&os_type=windows&platform=windows") == "1 image"
    assert total("status=failed&os_type=windows&platform=CentOS") == "4 images"
