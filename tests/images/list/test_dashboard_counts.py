"""The dashboard counts what the list shows: a sub-account scoped to one project group sees the same
totals on the dashboard, the list (both tabs), the API and the Excel export."""

import io
import re

import openpyxl
import pytest

from images.models import Image
from tenants import services
from tenants.models import Membership


@pytest.fixture
def scoped(tenant, make_user):
    mine = services.project_group_create(tenant=tenant, name="mine")
    theirs = services.project_group_create(tenant=tenant, name="theirs")
    user = make_user("acme-scoped")
    services.membership_add(
        tenant=tenant, user=user, permission=Membership.Permission.VIEW, project_groups=[mine]
    )
    return user, mine, theirs


def dashboard_counts(client) -> dict[str, int]:
    html = client.get("/").content.decode()
    return {status: int(n) for status, n in re.findall(r'data-status="(\w+)">(\d+)<', html)}


def list_total(client, path) -> int:
    html = client.get(path).content.decode()
    return int(re.search(r'data-testid="result-count">(\d+)', html).group(1))


def test_dashboard_list_api_and_excel_agree_for_a_scoped_subaccount(
    client, tenant, other_tenant, make_image, scoped
):
    user, mine, theirs = scoped
    make_image(tenant, project_group=mine)
    make_image(tenant, project_group=mine, kind=Image.Kind.ISO, disk_format=Image.DiskFormat.ISO)
    make_image(tenant, project_group=mine, status=Image.Status.FAILED)
    for _ in range(4):
        make_image(tenant, project_group=theirs)
    make_image(tenant, project_group=theirs, status=Image.Status.DELETED)
    make_image(tenant, project_group=mine, status=Image.Status.DELETED)
    make_image(other_tenant, sharing=Image.Sharing.GLOBAL)
    make_image(other_tenant)

    client.force_login(user)
    counts = dashboard_counts(client)
    assert counts["available"] == 3  # two in its group, one shared with every tenant
    assert counts["failed"] == 1
    assert counts["deleted"] == 1  # its group's image in the recycle bin, not the other group's
    shown = sum(n for status, n in counts.items() if status != Image.Status.DELETED)

    assert list_total(client, "/images/") + list_total(client, "/images/iso/") == shown

    _token, key = services.api_token_create(user=user)
    body = client.get("/api/v1/images/?page_size=1", HTTP_AUTHORIZATION=f"Token {key}").json()
    assert body["count"] == shown

    rows = 0
    for tab in ("self", "iso"):
        response = client.get(f"/images/export.xlsx?tab={tab}")
        sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
        rows += sheet.max_row - 1  # the heading row
    assert rows == shown


def test_the_owner_sees_every_group(owner_client, tenant, make_image, scoped):
    _user, mine, theirs = scoped
    make_image(tenant, project_group=mine)
    make_image(tenant, project_group=theirs)
    make_image(tenant, status=Image.Status.DELETED)
    counts = dashboard_counts(owner_client)
    assert counts["available"] == 2 and counts["deleted"] == 1
