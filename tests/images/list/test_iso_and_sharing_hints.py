"""The ISO tab and wizard speak of ISO images only; sharing with nobody to share with says so."""

import pytest

from storage.services import storage_create_default


def test_iso_wizard_highlights_iso_images_and_asks_no_target_size(owner_client):
    storage_create_default()
    html = owner_client.get("/images/import/?kind=iso").content.decode()
    assert 'name="target_size_gb"' not in html
    nav = html[html.index('data-testid="main-nav"') :][:1500]
    iso_link = nav[nav.index('href="/images/iso/"') - 80 : nav.index('href="/images/iso/"')]
    images_link = nav[nav.index('href="/images/"') - 80 : nav.index('href="/images/"')]
    assert "active" in iso_link and "active" not in images_link


def test_iso_tab_offers_no_disk_formats(owner_client):
    html = owner_client.get("/images/iso/").content.decode()
    assert 'value="qcow2"' not in html and 'value="vmdk"' not in html
    self_made = owner_client.get("/images/").content.decode()
    assert 'value="qcow2"' in self_made and '<option value="iso"' not in self_made


@pytest.mark.django_db
def test_sharing_with_no_other_tenant_explains_why(owner_client, tenant, make_image):
    image = make_image(tenant)
    html = owner_client.get(f"/images/{image.pk}/sharing/").content.decode()
    assert 'data-testid="no-other-tenants"' in html
    assert 'value="tenants"' in html and "disabled" in html[html.index('value="tenants"') :][:200]


def test_sharing_with_another_tenant_shows_the_picker(owner_client, tenant, other_tenant, make_image):
    image = make_image(tenant)
    html = owner_client.get(f"/images/{image.pk}/sharing/").content.decode()
    assert 'data-testid="no-other-tenants"' not in html and other_tenant.name in html
