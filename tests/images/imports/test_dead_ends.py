"""No dead ends after an import ends badly: a failed import says what failed and offers "Import again"
(the wizard filled in) and "Delete"; a cancelled one reads "Cancelled", not "Import failed"."""

import pytest

from images.models import Image
from images.services import import_cancel, import_fail


@pytest.fixture
def storage(db):
    from storage.services import storage_create_default

    return storage_create_default()


@pytest.fixture
def failed(start_import, storage):
    image = start_import(
        storage,
        "qcow2",
        name="debian web",
        platform="Debian",
        os_version="12",
        labels=["web"],
        description="front end",
    )
    import_fail(image_id=image.pk, message="The file is not a qcow2 image: it is raw.")
    return Image.objects.get(pk=image.pk)


def test_failed_detail_page_offers_import_again_and_delete(owner_client, failed):
    html = owner_client.get(f"/images/{failed.pk}/").content.decode()
    assert "The file is not a qcow2 image: it is raw." in html
    assert f'href="/images/import/?from={failed.pk}"' in html and 'data-testid="import-again"' in html
    assert f'href="/images/{failed.pk}/delete/"' in html
    # The upload page of a failed import is no dead end either.
    upload = owner_client.get(f"/images/{failed.pk}/upload/").content.decode()
    assert 'data-testid="import-again"' in upload and 'data-testid="failed-delete"' in upload
    assert "The file is not a qcow2 image" in upload


def test_import_again_fills_the_wizard_in(owner_client, failed):
    response = owner_client.get(f"/images/import/?from={failed.pk}")
    assert response.status_code == 200
    form = response.context["form"]
    assert form["name"].value() == "debian web"
    assert form["platform"].value() == "Debian" and form["os_version"].value() == "12"
    assert form["description"].value() == "front end"
    assert 'value="web"' in str(form["labels"])


def test_import_again_of_another_tenants_image_is_a_404(other_client, failed):
    assert other_client.get(f"/images/import/?from={failed.pk}").status_code == 404


def test_view_only_account_sees_the_reason_but_no_buttons(subaccount_client, failed):
    html = subaccount_client.get(f"/images/{failed.pk}/").content.decode()
    assert "The file is not a qcow2 image" in html
    assert 'data-testid="import-again"' not in html


def test_a_cancelled_import_reads_cancelled(owner_client, owner, start_import, storage):
    image = start_import(storage, "qcow2", name="stopped")
    import_cancel(image=image, actor=owner)
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and image.failure_reason == "cancelled"
    assert image.status_label() == "Cancelled"
    row = owner_client.get(f"/images/{image.pk}/row/").content.decode()
    assert ">Cancelled<" in row and "Import failed" not in row
    detail = owner_client.get(f"/images/{image.pk}/").content.decode()
    assert "The import was cancelled." in detail
    api = owner_client.get(f"/api/v1/images/{image.pk}/").json()
    assert api["status"] == "failed" and api["failure_reason"] == "cancelled"


def test_cancel_buttons_ask_first(owner_client, start_import, storage):
    image = start_import(storage, "qcow2", name="in flight")
    for url in (f"/images/{image.pk}/", f"/images/{image.pk}/row/", f"/images/{image.pk}/upload/"):
        html = owner_client.get(url).content.decode()
        cancel_form = html[html.index(f'action="/images/{image.pk}/cancel/"') :][:400]
        assert "data-confirm=" in cancel_form, url


def test_delete_page_of_an_image_still_importing_says_why(owner_client, start_import, storage):
    image = start_import(storage, "qcow2", name="busy")
    html = owner_client.get(f"/images/{image.pk}/delete/").content.decode()
    assert 'data-testid="delete-error"' in html and 'data-testid="confirm-delete"' not in html
