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
