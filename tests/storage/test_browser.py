"""In a real browser: the storage page draws usage bars with widths (no inline styles under the CSP)."""

import pytest

from storage import services
from tenants import services as tenant_services
from tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_storage_page_draws_usage_bars(browser_page, make_user, s3_endpoint, tmp_path):
    from storage.backends import get_backend

    tenant = tenant_services.tenant_create(name="acme")
    tenant_services.membership_add(tenant=tenant, user=make_user("viewer"), role=Membership.Role.OWNER)
    storage = services.storage_create(
        kind="distributed",
        name="object-store",
        endpoint_url=s3_endpoint,
        bucket="browser-bars",
        access_key="K",
        secret_key="S",
        capacity_bytes=8 * 1024 * 1024,
        reserved_bytes=0,
    )
    import io

    get_backend(storage).ingest(io.BytesIO(b"x" * 2 * 1024 * 1024), key="quarter")
    page = browser_page
    page.goto("/storages/")
    page.get_by_label("Username").fill("viewer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    row = page.locator('tr[data-storage="object-store"]')
    assert row.is_visible()
    bar = row.get_by_test_id("bar-used")
    whole = row.locator(".progress-stacked")
    ratio = bar.bounding_box()["width"] / whole.bounding_box()["width"]
    assert 0.2 < ratio < 0.3  # 2 MiB of 8 MiB
    assert "2.0 MB used by images" in row.inner_text().replace("\xa0", " ")
