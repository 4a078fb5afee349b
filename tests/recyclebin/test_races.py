"""Races between threads, each with its own database connection: restore against expiry, two expunges at
once, deletes during a batch restore. The row locks decide; the final state is consistent, nothing is
expunged twice or restored after an expunge started."""

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from images.models import Image
from images.services import image_delete
from images.services.transitions import TransitionNotAllowed
from recyclebin.services import (
    image_expire,
    image_expunge,
    image_expunge_run,
    image_restore,
    images_batch_restore,
)
from tenants.models import OperationLog

pytestmark = pytest.mark.django_db(transaction=True)


def race(*calls):
    """Run the calls at the same moment, one thread each; returns what each returned or raised."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            for _attempt in range(50):
                try:
                    results[index] = call()
                    break
                except OperationalError:  # SQLite: the database is locked by the other writer; try again
                    threading.Event().wait(0.02)
        except Exception as error:  # noqa: BLE001 - reported to the test
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_restore_against_expiry(tenant, owner, make_image, rq_redis):
    for _round in range(8):
        image = image_delete(image=make_image(tenant), actor=owner)
        Image.objects.filter(pk=image.pk).update(purge_after=timezone.now() - timedelta(seconds=1))
        restored, expired = race(
            lambda image=image: image_restore(image=image, actor=owner),
            lambda image=image: image_expire(image_id=image.pk),
        )
        status = Image.objects.get(pk=image.pk).status
        if isinstance(restored, Image):
            assert expired is False and status == "available"
        else:
            assert isinstance(restored, TransitionNotAllowed) and expired is True and status == "deleting"
            # And the expunge, once started, cannot be undone by a restore.
            with pytest.raises(TransitionNotAllowed):
                image_restore(image=image, actor=owner)
            assert image_expunge_run(image_id=image.pk) is True


def test_two_expunges_at_once(tenant, owner, make_image, rq_redis):
    image = image_delete(image=make_image(tenant), actor=owner)
    first, second = race(*[lambda: image_expunge(image=image, actor=owner)] * 2)
    outcomes = sorted(type(r).__name__ for r in (first, second))
    assert outcomes == ["Image", "TransitionNotAllowed"]
    runs = race(*[lambda: image_expunge_run(image_id=image.pk)] * 3)
    assert sorted(runs) == [False, False, True]
    assert not Image.objects.filter(pk=image.pk).exists()
    assert OperationLog.objects.filter(action="image.expunge", result="success").count() == 1


def test_deletes_during_a_batch_restore(tenant, owner, make_image, rq_redis):
    images = [image_delete(image=make_image(tenant, name=f"r{n}"), actor=owner) for n in range(20)]
    scope = Image.objects.filter(tenant=tenant)

    def delete_each_restored():
        deleted = 0
        for image in images:
            try:
                image_delete(image=Image.objects.get(pk=image.pk), actor=owner)
                deleted += 1
            except TransitionNotAllowed:
                pass
        return deleted

    restored, deleted = race(
        lambda: images_batch_restore(
            tenant=tenant, scope=scope, image_ids=[i.pk for i in images], actor=owner
        ),
        delete_each_restored,
    )
    assert len(restored.done) == 20
    for image in images:
        row = Image.objects.get(pk=image.pk)
        assert row.status in ("available", "deleted")
        last = (
            OperationLog.objects.filter(
                target_id=str(image.pk), result="success", action__in=["image.delete", "image.restore"]
            )
            .order_by("-pk")
            .first()
        )
        # The row says what its last logged change did.
        assert (last.action == "image.restore") == (row.status == "available")
        assert (row.deleted_at is None) == (row.status == "available")
    assert deleted == sum(1 for i in images if Image.objects.get(pk=i.pk).status == "deleted")
