"""A row offers "Create VM" and "Download" exactly when those parts' URL patterns are declared: absent by
design without them (no lookup failing behind the page), present as soon as they exist."""

import pytest
from django.urls import clear_url_caches


@pytest.fixture
def urlconf(settings):
    def use(name):
        settings.ROOT_URLCONF = f"tests.images.list.{name}"
        clear_url_caches()

    yield use
    clear_url_caches()


@pytest.mark.parametrize("built", [True, False])
def test_row_actions_follow_the_declared_urls(owner_client, tenant, make_image, urlconf, built):
    urlconf("feature_urls_on" if built else "feature_urls_off")
    image = make_image(tenant)
    html = owner_client.get("/images/").content.decode()
    assert (f"/vms/new/?image={image.pk}" in html) is built
    assert (f"/images/{image.pk}/download/" in html) is built
    assert f"/images/{image.pk}/edit/" in html  # the images app's own actions are always there
