"""A new user in Chromium: filters, searches and sorts the image list, deletes three images in one go,
and exports the list to find the same rows in the Excel file."""

import io
import os

import openpyxl
import pytest
from playwright.sync_api import expect

from images.models import Image
from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def _shot(page, name):
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


def _visible_names(page):
    return page.get_by_test_id("image-name").all_inner_texts()


@pytest.fixture
def catalogue(make_user):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("newcomer"), role=Membership.Role.OWNER)
    rows = [
        ("web-frontend", "linux", "CentOS", "7.9", "available"),
        ("web-backend", "linux", "Ubuntu", "20.10", "available"),
        ("web-cache", "linux", "CentOS", "7.6", "failed"),
        ("web-legacy", "linux", "CentOS", "6.10", "available"),
        ("web-windows", "windows", "Windows", "2019", "available"),
        ("db-primary", "linux", "CentOS", "7.9", "available"),
        ("db-replica", "linux", "Ubuntu", "20.10", "uploading"),
        ("ad-controller", "windows", "Windows", "2016", "available"),
    ]
    for n, (name, os_type, platform, version, status) in enumerate(rows):
        Image.objects.create(
            tenant=tenant,
            name=name,
            disk_format="qcow2",
            os_type=os_type,
            platform=platform,
            os_version=version,
            status=status,
            stage="receiving" if status == "uploading" else "",
            progress=100 if status == "available" else 30,
            size=(n + 1) * 1024**3,
        )
    return tenant


def test_filter_search_sort_batch_delete_and_export(browser_page, catalogue, tmp_path):
    page = browser_page
    page.goto("/images/")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/images/")
    assert len(_visible_names(page)) == 8
    _shot(page, "1-list")

    # Filter by system type: the results swap in place and the URL keeps the filter.
    page.get_by_test_id("image-filters").get_by_label("System type").select_option("linux")
    page.wait_for_url("**os_type=linux**")
    expect(page.get_by_test_id("image-row")).to_have_count(6)
    assert "web-windows" not in _visible_names(page)

    # Search by part of the name.
    page.get_by_test_id("filter-q").fill("web")
    page.get_by_test_id("filter-q").press("Enter")
    page.wait_for_url("**q=web**")
    expect(page.get_by_test_id("image-row")).to_have_count(4)

    # Sort by name, then the other way round.
    page.get_by_test_id("sort-name").click()
    page.wait_for_url("**ordering=name**")
    assert _visible_names(page) == ["web-backend", "web-cache", "web-frontend", "web-legacy"]
    page.get_by_test_id("sort-name").click()
    page.wait_for_url("**ordering=-name**")
    expect(page.get_by_test_id("image-name").first).to_have_text("web-legacy")
    assert _visible_names(page) == ["web-legacy", "web-frontend", "web-cache", "web-backend"]
    _shot(page, "2-filtered-sorted")

    # Select three rows and delete them in one request, after a dialog that lists them.
    chosen = ["web-legacy", "web-cache", "web-backend"]
    for name in chosen:
        page.locator("[data-testid=image-row]", has_text=name).get_by_test_id("row-select").check()
    assert page.get_by_test_id("batch-delete").is_enabled()
    page.get_by_test_id("batch-delete").click()
    dialog = page.get_by_test_id("batch-dialog")
    dialog.get_by_test_id("batch-confirm-list").wait_for()
    listed = dialog.get_by_test_id("batch-confirm-row").all_inner_texts()
    assert sorted(text.split()[0] for text in listed) == sorted(chosen)
    _shot(page, "3-confirm")
    dialog.get_by_test_id("batch-confirm").click()
    dialog.get_by_test_id("batch-result").wait_for()
    results = dialog.get_by_test_id("batch-result-row")
    assert results.count() == 3
    assert all(results.nth(i).get_attribute("data-deleted") == "yes" for i in range(3))
    _shot(page, "4-result")
    dialog.get_by_test_id("batch-result-close").click()
    expect(page.get_by_test_id("image-row")).to_have_count(1)
    assert _visible_names(page) == ["web-frontend"]
    assert set(Image.objects.filter(status="deleted").values_list("name", flat=True)) == set(chosen)

    # Export what the list shows now: clear the search, keep the system type filter.
    page.get_by_test_id("filter-q").fill("")
    page.get_by_test_id("filter-q").press("Enter")
    expect(page.get_by_test_id("image-row")).to_have_count(3)
    listed = _visible_names(page)
    with page.expect_download() as download_info:
        page.get_by_test_id("export-excel").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    path = tmp_path / "export.xlsx"
    download.save_as(path)
    sheet = openpyxl.load_workbook(io.BytesIO(path.read_bytes())).worksheets[0]
    exported = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert exported == listed


def test_importing_rows_refresh_themselves_without_reloading_the_page(browser_page, catalogue):
    page = browser_page
    busy = Image.objects.get(name="db-replica")
    page.goto("/images/")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/images/")
    page.evaluate("() => { window.pageMarker = 'still here'; }")
    row = page.locator(f"#image-row-{busy.pk}")
    expect(row.get_by_test_id("image-stage")).to_contain_text("30%")
    row.get_by_test_id("row-select").check()

    Image.objects.filter(pk=busy.pk).update(progress=75, stage="storing")
    expect(row.get_by_test_id("image-stage")).to_contain_text("Storing · 75%", timeout=15000)
    assert row.get_by_test_id("row-select").is_checked()

    Image.objects.filter(pk=busy.pk).update(status="available", stage="", progress=100)
    expect(row.get_by_test_id("image-status")).to_contain_text("Available", timeout=15000)
    assert row.get_attribute("data-poll-url") is None
    assert row.get_by_test_id("row-select").is_checked()

    other = Image.objects.create(
        tenant=catalogue, name="short-lived", disk_format="qcow2", status="uploading", stage="queued"
    )
    page.get_by_test_id("filter-submit").click()
    gone = page.locator(f"#image-row-{other.pk}")
    expect(gone).to_have_count(1)
    Image.objects.filter(pk=other.pk).update(status="deleted")
    expect(gone).to_have_count(0, timeout=15000)
    assert page.evaluate("() => window.pageMarker") == "still here"
