"""The overview: counts by status through the selectors, storage usage, imports in progress with their
progress, recent failures with their reasons, the recycle bin, and SVG charts drawn on the server."""

import pytest

from imageconsole.views import DashboardView
from images.models import Image
from storage.services import storage_create_default
from tenants import services
from tenants.models import Membership


@pytest.fixture
def images(tenant, other_tenant):
    def make(**fields):
        values = {"tenant": tenant, "disk_format": "qcow2", "status": "available", "stage": "", "size": 2**30}
        values.update(fields)
        return Image.objects.create(**values)

    make(name="a")
    make(name="b", disk_format="raw")
    make(name="importing", status="uploading", stage="receiving", progress=37)
    make(name="broken", status="failed", error="The file is not a qcow2 image.")
    make(name="binned", status="deleted")
    make(name="theirs", tenant=other_tenant)
    return make


def test_counts_progress_failures_and_bin(owner_client, images):
    storage_create_default()
    response = owner_client.get("/")
    html = response.content.decode()
    cards = {value: n for value, _label, n in response.context["cards"]}
    assert cards["available"] == 2 and cards["uploading"] == 1 and cards["failed"] == 1
    assert response.context["total"] == 4 and response.context["recycle_bin_count"] == 1
    assert 'href="/recycle-bin/"' in html  # the recycle bin is built: its link is never silently dropped
    progress = html[html.index('data-testid="imports-in-progress"') :][:1500]
    assert "importing" in progress and 'value="37"' in progress
    failures = html[html.index('data-testid="recent-failures"') :][:1500]
    assert "broken" in failures and "The file is not a qcow2 image." in failures
    assert "theirs" not in html
    assert 'data-testid="storage-usage"' in html


def test_charts_are_svg_drawn_on_the_server(owner_client, images):
    html = owner_client.get("/").content.decode()
    chart = html[html.index('data-testid="chart-images-per-month"') :]
    chart = chart[: chart.index("</svg>")]
    assert chart.count("<rect") == 12  # one column per month, the last twelve
    formats = html[html.index('data-testid="chart-formats"') :]
    formats = formats[: formats.index("</svg>")]
    assert ">qcow2<" in formats and ">raw<" in formats
    assert "<script" not in html[html.index("<main") :]


def test_counts_follow_a_subaccounts_project_groups(client, tenant, make_user, images):
    group = services.project_group_create(tenant=tenant, name="web")
    images(name="grouped", project_group=group)
    user = make_user("scoped")
    services.membership_add(
        tenant=tenant, user=user, permission=Membership.Permission.VIEW, project_groups=[group]
    )
    client.force_login(user)
    response = client.get("/")
    assert response.context["total"] == 1
    listed = client.get("/images/").context["page"].paginator.count
    assert listed == 1


def test_admin_panels_are_for_staff_only(owner_client, admin_client, images, monkeypatch):
    monkeypatch.setattr(DashboardView, "admin_panels", ["console/empty_state.html"])
    assert 'data-testid="empty-state"' not in owner_client.get("/").content.decode()
    assert 'data-testid="empty-state"' in admin_client.get("/").content.decode()
