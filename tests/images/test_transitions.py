"""The image state machine itself: the one status writer, in its one-id and many-ids forms."""

import itertools
import threading
import time

import pytest
from django.db import connection, transaction

from images.models import Image
from images.services import TransitionNotAllowed, image_transition, image_transition_many
from tenants.models import OperationLog

S = Image.Status
# The state machine (DESIGN.md, "Image status", with the recycle bin's moves: delete goes straight to
# `deleted`, expunge passes through `deleting`), written out so a change to the table is seen.
ALLOWED = {
    (S.CREATING, S.AVAILABLE),
    (S.CREATING, S.FAILED),
    (S.UPLOADING, S.AVAILABLE),
    (S.UPLOADING, S.FAILED),
    (S.AVAILABLE, S.DELETED),
    (S.AVAILABLE, S.DELETING),
    (S.FAILED, S.DELETED),
    (S.FAILED, S.DELETING),
    (S.DELETED, S.AVAILABLE),
    (S.DELETED, S.FAILED),
    (S.DELETED, S.DELETING),
}
PAIRS = list(itertools.product(S.values, S.values))


def _image(tenant, status, name="img"):
    return Image.objects.create(tenant=tenant, name=name, status=status, disk_format="qcow2")


def _logs(image):
    return list(
        OperationLog.objects.filter(target_id=str(image.pk)).values_list("action", "message", "result")
    )


def _path(*statuses) -> str:
    """A status path as the operation log words it (in English, the test's language)."""
    return " → ".join(str(Image.Status(status).label) for status in statuses)


def test_the_table_is_the_designs():
    assert {(a, b) for a, targets in Image.TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize(("before", "to"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_every_pair_moves_and_logs_only_if_allowed(tenant, owner, before, to):
    image = _image(tenant, before)
    ran = []
    if (before, to) in ALLOWED:
        moved = image_transition(
            image_id=image.pk, to=to, action="test.move", actor=owner, after_commit=lambda: ran.append(1)
        )
        assert moved.status == to
        image.refresh_from_db()
        assert image.status == to
        assert _logs(image) == [("test.move", _path(before, to), "success")]
        log = OperationLog.objects.get(target_id=str(image.pk))
        assert (log.tenant_id, log.actor, log.target_name) == (tenant.pk, owner, "img")
    else:
        with pytest.raises(TransitionNotAllowed) as refused:
            image_transition(image_id=image.pk, to=to, action="test.move", after_commit=lambda: ran.append(1))
        assert "img" in str(refused.value)
        image.refresh_from_db()
        assert image.status == before
        assert _logs(image) == []
    assert ran == []  # pytest-django's test transaction never commits


@pytest.mark.parametrize("to", S.values)
def test_the_many_form_moves_exactly_the_allowed_rows(tenant, other_tenant, to):
    images = {before: _image(tenant, before, name=f"from-{before}") for before in S.values}
    # Another tenant's row that the table would let move: it must stay because of `tenant`.
    foreign = _image(other_tenant, next((a for a, b in sorted(ALLOWED) if b == to), S.UPLOADING))
    outcome = image_transition_many(
        image_ids=[image.pk for image in images.values()] + [foreign.pk],
        to=to,
        action="test.many",
        tenant=tenant,
    )
    expected = {before for before in S.values if (before, to) in ALLOWED}
    assert all(image.status == to for image in outcome.moved)
    assert {image.name for image in outcome.moved} == {f"from-{b}" for b in expected}
    assert {image.pk for image in outcome.refused} == {i.pk for b, i in images.items() if b not in expected}
    for before, image in images.items():
        image.refresh_from_db()
        assert image.status == (to if before in expected else before)
        assert _logs(image) == ([("test.many", _path(before, to), "success")] if before in expected else [])
    foreign_status = foreign.status
    foreign.refresh_from_db()
    assert foreign.status == foreign_status and _logs(foreign) == []  # another tenant's row is not touched


def test_a_path_is_checked_step_by_step_and_logged_once(tenant):
    available, uploading = _image(tenant, S.AVAILABLE, "a"), _image(tenant, S.UPLOADING, "u")
    outcome = image_transition_many(
        image_ids=[available.pk, uploading.pk], to=S.DELETING, via=[S.DELETED], action="image.expunge"
    )
    assert outcome.moved_ids == [available.pk] and [i.pk for i in outcome.refused] == [uploading.pk]
    assert _logs(available) == [("image.expunge", _path(S.AVAILABLE, S.DELETED, S.DELETING), "success")]
    other = _image(tenant, S.AVAILABLE, "b")
    with pytest.raises(TransitionNotAllowed):
        image_transition(image_id=other.pk, to=S.AVAILABLE, via=[S.DELETING], action="x")


def test_allowed_from_narrows_the_table(tenant):
    image = _image(tenant, S.DELETED)
    with pytest.raises(TransitionNotAllowed):
        image_transition(image_id=image.pk, to=S.FAILED, allowed_from=[S.UPLOADING], action="image.cancel")
    image.refresh_from_db()
    assert image.status == S.DELETED


@pytest.mark.django_db(transaction=True)
def test_follow_ups_run_only_after_commit(tenant):
    image, other = _image(tenant, S.UPLOADING, "one"), _image(tenant, S.UPLOADING, "two")
    ran = []
    with transaction.atomic():
        image_transition(
            image_id=image.pk, to=S.AVAILABLE, action="x", after_commit=lambda: ran.append("one")
        )
        image_transition_many(image_ids=[other.pk], to=S.FAILED, action="x", after_commit=ran.append)
        assert ran == []
    assert ran == ["one", [other.pk]]

    class Boom(Exception):
        pass

    image = _image(tenant, S.UPLOADING, "three")
    with pytest.raises(Boom), transaction.atomic():
        image_transition(image_id=image.pk, to=S.FAILED, action="x", after_commit=lambda: ran.append("three"))
        raise Boom
    image.refresh_from_db()
    assert image.status == S.UPLOADING and _logs(image) == [] and "three" not in ran
    # Nothing moved: no follow-up.
    image_transition_many(image_ids=[image.pk], to=S.DELETED, action="x", after_commit=ran.append)
    assert ran == ["one", [other.pk]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("form", ["one", "many"])
def test_two_writers_racing_one_row_cannot_both_win(tenant, form):
    """A holds the row in an open transaction; B tries a move that is allowed from the status A found but
    not from the one A leaves. B must wait for A's lock and then be refused by the table: without the
    lock B reads the old status, without the table check B overwrites A, and both then "win"."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises whole write transactions")
    image = _image(tenant, S.UPLOADING)
    a_moved = threading.Event()
    results = {}

    def move(to):
        if form == "one":
            return image_transition(image_id=image.pk, to=to, action=f"race.{to}").status
        outcome = image_transition_many(image_ids=[image.pk], to=to, action=f"race.{to}")
        if not outcome.moved:
            raise TransitionNotAllowed(outcome.refused[0], to)
        return to

    def writer_a():
        try:
            with transaction.atomic():
                results["a"] = move(S.AVAILABLE)
                a_moved.set()
                time.sleep(0.8)  # B starts while A still holds the row
        finally:
            a_moved.set()
            connection.close()

    def writer_b():
        a_moved.wait(10)
        try:
            results["b"] = move(S.FAILED)
        except TransitionNotAllowed:
            results["b"] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    image.refresh_from_db()
    assert results == {"a": S.AVAILABLE, "b": "refused"}
    assert image.status == S.AVAILABLE
    assert [a for a, _m, _r in _logs(image)] == ["race.available"]
