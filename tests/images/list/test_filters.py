"""The list's filters, search and sorting (one FilterSet for the console, the export and the API)."""

import pytest
from django.test import RequestFactory

from images.filters import ORDERING_FIELDS, ImageFilter
from images.models import Image
from images.selectors import images_visible
from tenants import services


@pytest.fixture
def request_for(tenant):
    def make(membership=None, on_tenant=None):
        request = RequestFactory().get("/images/")
        request.tenant = on_tenant or tenant
        request.membership = membership
        return request

    return make


@pytest.fixture
def filtered(tenant, request_for):
    def run(params, membership=None):
        request = request_for(membership)
        queryset = images_visible(tenant=tenant, membership=membership)
        return ImageFilter(params, queryset=queryset, request=request)

    return run


def names(filterset):
    return [image.name for image in filterset.qs]


@pytest.fixture
def catalogue(tenant, make_image):
    group = services.project_group_create(tenant=tenant, name="web-team")
    make_image(
        tenant,
        name="centos-web",
        platform="CentOS",
        os_type="linux",
        labels=["prod", "web"],
        project_group=group,
    )
    make_image(
        tenant,
        name="win-2019",
        platform="Windows",
        os_type="windows",
        disk_format="raw",
        enabled=False,
        labels=["production"],
    )
    make_image(
        tenant,
        name="ubuntu-arm",
        platform="Ubuntu",
        architecture="aarch64",
        boot_mode="uefi",
        status=Image.Status.FAILED,
    )
    make_image(tenant, name="installer", kind="iso", disk_format="iso", status=Image.Status.UPLOADING)
    return group


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, ["ubuntu-arm"]),
        ({"status": "uploading"}, ["installer"]),
        ({"os_type": "windows"}, ["win-2019"]),
        ({"platform": "ubuntu"}, ["ubuntu-arm"]),
        ({"architecture": "aarch64"}, ["ubuntu-arm"]),
        ({"disk_format": "raw"}, ["win-2019"]),
        ({"kind": "iso"}, ["installer"]),
        ({"enabled": "false"}, ["win-2019"]),
        ({"label": "prod"}, ["centos-web"]),
        ({"label": "production"}, ["win-2019"]),
        ({"label": "pro"}, []),
        ({"q": "WIN"}, ["win-2019"]),
        ({"q": "nomatch"}, []),
        ({"status": "available", "os_type": "linux"}, ["centos-web"]),
    ],
)
def test_each_filter_narrows_the_list(catalogue, filtered, params, expected):
    assert sorted(names(filtered(params))) == sorted(expected)


def test_project_group_filter(catalogue, filtered):
    assert names(filtered({"project_group": str(catalogue.pk)})) == ["centos-web"]


def test_another_tenants_project_group_is_not_a_choice(catalogue, filtered, other_tenant, make_image):
    theirs = services.project_group_create(tenant=other_tenant, name="theirs")
    make_image(other_tenant, name="their-image", project_group=theirs)
    filterset = filtered({"project_group": str(theirs.pk)})
    assert not filterset.is_valid()
    assert "project_group" in filterset.errors
    assert "their-image" not in names(filterset)


def test_search_by_resource_id_whole_or_beginning(catalogue, filtered, tenant):
    image = Image.objects.get(name="win-2019")
    assert names(filtered({"q": str(image.pk)})) == ["win-2019"]
    assert names(filtered({"q": str(image.pk)[:8]})) == ["win-2019"]
    assert names(filtered({"q": f"  {str(image.pk).upper()}  "})) == ["win-2019"]


def test_no_filter_lists_newest_first(catalogue, filtered):
    assert names(filtered({})) == ["installer", "ubuntu-arm", "win-2019", "centos-web"]


@pytest.mark.parametrize("column", sorted(ORDERING_FIELDS))
def test_every_column_sorts_both_ways_and_ends_in_pk(catalogue, filtered, column):
    ascending = filtered({"ordering": column}).qs
    descending = filtered({"ordering": f"-{column}"}).qs
    assert ascending.query.order_by[-1] == ("id" if column == "id" else "-pk")
    assert len(ascending) == len(descending) == 4
    first_field = ORDERING_FIELDS[column][0]
    assert ascending.query.order_by[0] == first_field
    assert descending.query.order_by[0] == f"-{first_field}"


def test_sorting_by_name_and_size(catalogue, filtered):
    assert names(filtered({"ordering": "name"})) == ["centos-web", "installer", "ubuntu-arm", "win-2019"]
    sizes = [image.size for image in filtered({"ordering": "-size"}).qs]
    assert sizes == sorted(sizes, reverse=True)


def test_equal_values_keep_a_stable_order(tenant, make_image, filtered):
    for _ in range(30):
        make_image(tenant, name="same")
    first = [image.pk for image in filtered({"ordering": "name"}).qs]
    assert first == sorted(first, reverse=True)


def test_unknown_values_are_errors_not_crashes(catalogue, filtered):
    filterset = filtered({"status": "melted", "ordering": "password", "enabled": "maybe"})
    assert not filterset.is_valid()
    assert set(filterset.errors) == {"status", "ordering", "enabled"}
    assert len(filterset.qs) == 4
