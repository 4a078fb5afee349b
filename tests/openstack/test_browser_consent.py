"""In the console, a tenant accepts an image another tenant shares with it (the consent OpenStack image
members ask for), and the owner sees the answer on the image's page. Headless Chromium."""

import os

import pytest

from images.models import Image, ImageShare
from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


def login(page, username):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def test_accepting_an_image_shared_with_the_tenant(browser_page, make_user):
    acme = services.tenant_create(name="acme")
    services.membership_add(tenant=acme, user=make_user("acme-owner"), role=Membership.Role.OWNER)
    globex = services.tenant_create(name="globex")
    services.membership_add(tenant=globex, user=make_user("globex-owner"), role=Membership.Role.OWNER)
    image = Image.objects.create(
        tenant=acme, name="golden-ubuntu", disk_format="qcow2", status="available", stage="", size=2**30,
        sharing="tenants", protected=True, min_disk=10, min_ram=1024, properties={"os_distro": "ubuntu"},
    )  # fmt: skip
    ImageShare.objects.create(image=image, tenant=globex)
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})

    login(page, "globex-owner")
    page.goto("/images/")
    assert page.get_by_text("golden-ubuntu").count() == 0
    page.get_by_test_id("shared-with-us").click()
    row = page.locator("[data-testid=offers] tr[data-image]")
    assert row.get_by_text("golden-ubuntu").is_visible() and row.get_by_text("acme").is_visible()
    shot(page, "offers-en")
    page.get_by_test_id("language-switcher").get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="共享给本租户的镜像").is_visible()
    shot(page, "offers-zh")
    page.get_by_test_id("accept-share").click()
    assert page.get_by_text("它现在在您的镜像列表中").is_visible()
    page.goto("/images/")
    assert page.get_by_text("golden-ubuntu").first.is_visible()
    page.get_by_test_id("language-switcher").get_by_role("button", name="English").click()
    page.wait_for_load_state()
    page.context.clear_cookies()

    login(page, "acme-owner")
    page.goto(f"/images/{image.pk}/")
    shares = page.get_by_test_id("image-shares")
    assert shares.locator("[data-share-status=accepted]").is_visible()
    assert page.get_by_test_id("image-protected").is_visible()
    assert page.get_by_test_id("image-openstack-properties").get_by_text("os_distro").is_visible()
    shot(page, "detail-en")
    page.get_by_test_id("language-switcher").get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    assert shares.get_by_text("已接受").is_visible()
    shot(page, "detail-zh")
