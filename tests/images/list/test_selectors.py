"""What a tenant's image list holds: own images, images shared with it, nothing else."""

import uuid

import pytest
from django.http import Http404

from images.models import Image
from images.selectors import TAB_KINDS, image_get, images_visible
from tenants import services
from tenants.models import Membership


def _names(queryset):
    return sorted(image.name for image in queryset)


def _owner_membership(tenant):
    return tenant.memberships.get(role=Membership.Role.OWNER)


def test_own_images_but_not_another_tenants_or_deleted_ones(tenant, other_tenant, make_image):
    make_image(tenant, name="mine")
    make_image(tenant, name="mine-failed", status=Image.Status.FAILED)
    make_image(tenant, name="mine-deleted", status=Image.Status.DELETED)
    make_image(other_tenant, name="theirs")
    visible = images_visible(tenant=tenant, membership=_owner_membership(tenant))
    assert _names(visible) == ["mine", "mine-failed"]


def test_images_shared_with_the_tenant_appear_once(tenant, other_tenant, make_image):
    third = services.tenant_create(name="initech")
    Sharing = Image.Sharing
    make_image(other_tenant, name="to-us", sharing=Sharing.TENANTS, shared_with=[tenant, third])
    make_image(other_tenant, name="to-third-only", sharing=Sharing.TENANTS, shared_with=[third])
    make_image(other_tenant, name="global", sharing=Sharing.GLOBAL)
    make_image(other_tenant, name="global-but-failed", sharing=Sharing.GLOBAL, status=Image.Status.FAILED)
    make_image(other_tenant, name="private", sharing=Sharing.PRIVATE)
    visible = images_visible(tenant=tenant, membership=_owner_membership(tenant))
    assert _names(visible) == ["global", "to-us"]
    assert visible.count() == 2


def test_subaccount_limited_to_project_groups_sees_only_those_own_images(tenant, make_user, make_image):
    team = services.project_group_create(tenant=tenant, name="team")
    other = services.project_group_create(tenant=tenant, name="other")
    make_image(tenant, name="team-image", project_group=team)
    make_image(tenant, name="other-image", project_group=other)
    make_image(tenant, name="no-group")
    membership = services.membership_add(tenant=tenant, user=make_user("scoped"), project_groups=[team])
    assert _names(images_visible(tenant=tenant, membership=membership)) == ["team-image"]
    # The owner and administrators (no membership) see all of them.
    assert len(images_visible(tenant=tenant, membership=_owner_membership(tenant))) == 3
    assert len(images_visible(tenant=tenant, membership=None)) == 3


def test_tabs_split_self_made_and_iso_images(tenant, make_image):
    make_image(tenant, name="system", kind=Image.Kind.SYSTEM)
    make_image(tenant, name="volume", kind=Image.Kind.VOLUME)
    make_image(tenant, name="iso", kind=Image.Kind.ISO, disk_format=Image.DiskFormat.ISO)
    membership = _owner_membership(tenant)
    assert _names(images_visible(tenant=tenant, membership=membership, kinds=TAB_KINDS["self"])) == [
        "system",
        "volume",
    ]
    assert _names(images_visible(tenant=tenant, membership=membership, kinds=TAB_KINDS["iso"])) == ["iso"]


def test_detail_lookup_is_a_404_for_what_the_tenant_cannot_see(tenant, other_tenant, make_image):
    membership = _owner_membership(tenant)
    mine = make_image(tenant, name="mine")
    theirs = make_image(other_tenant, name="theirs")
    deleted = make_image(tenant, name="gone", status=Image.Status.DELETED)
    assert image_get(tenant=tenant, membership=membership, pk=mine.pk) == mine
    assert image_get(tenant=tenant, membership=membership, pk=str(mine.pk)) == mine
    for pk in (theirs.pk, deleted.pk, uuid.uuid4(), "not-a-uuid", ""):
        with pytest.raises(Http404):
            image_get(tenant=tenant, membership=membership, pk=pk)


def test_detail_lookup_finds_a_shared_image(tenant, other_tenant, make_image):
    shared = make_image(other_tenant, name="shared", sharing=Image.Sharing.GLOBAL)
    assert image_get(tenant=tenant, membership=None, pk=shared.pk) == shared


@pytest.mark.parametrize("keys_first", [False, True])
@pytest.mark.parametrize("with_shared", [False, True])
@pytest.mark.parametrize("ordering", ["-created", "name", "-size", "project_group", "-os", "status", "id"])
def test_listing_pages_equal_the_plain_query_at_every_depth(
    tenant, other_tenant, make_image, with_shared, ordering, keys_first, monkeypatch
):
    """ImageListing counts and pages own and shared images apart (and reads late pages backwards);
    page by page it must give exactly what the one plain query gives."""
    from django.core.paginator import Paginator
    from django.test import RequestFactory

    from images import selectors
    from images.filters import ImageFilter
    from images.selectors import image_listing

    if keys_first:  # deep pages find their keys first; make every page deep
        monkeypatch.setattr(selectors, "KEYS_FIRST_FROM", 0)
    group = services.project_group_create(tenant=tenant, name="g")
    for n in range(23):
        make_image(
            tenant,
            name=f"img-{n % 7}",
            size=(n % 5) * 100,
            project_group=group if n % 3 == 0 else None,
            platform=["CentOS", "Ubuntu", ""][n % 3],
            status=["available", "failed", "uploading"][n % 3],
        )
    if with_shared:
        make_image(other_tenant, name="img-3", sharing="global", size=200)
        make_image(other_tenant, name="img-x", sharing="tenants", shared_with=[tenant])
        make_image(other_tenant, name="img-hidden", sharing="tenants")
    request = RequestFactory().get("/")
    request.tenant, request.membership = tenant, None
    filterset = ImageFilter(
        {"ordering": ordering}, queryset=images_visible(tenant=tenant, membership=None), request=request
    )
    expected = [image.pk for image in filterset.qs]
    assert len(expected) == 23 + (2 if with_shared else 0)
    listing = image_listing(tenant=tenant, membership=None, filterset=filterset)
    paginator = Paginator(listing, 4)
    assert paginator.count == len(expected)
    pages = [image.pk for number in paginator.page_range for image in paginator.page(number).object_list]
    assert pages == expected


@pytest.mark.parametrize(
    "params",
    [{}, {"status": "available"}, {"q": "img-3"}, {"os_type": "windows"}, {"kind": "iso"}, {"label": "x"}],
)
def test_listing_holds_exactly_what_images_visible_holds(tenant, other_tenant, make_user, make_image, params):
    """The listing builds its own and shared parts separately; with filters and a project-group scope
    they still hold exactly the rows of the one images_visible query."""
    from django.test import RequestFactory

    from images.filters import ImageFilter
    from images.selectors import image_listing

    team = services.project_group_create(tenant=tenant, name="team")
    for n in range(12):
        make_image(
            tenant,
            name=f"img-{n % 4}",
            project_group=team if n % 2 else None,
            os_type=["linux", "windows"][n % 2],
            kind=["system", "iso"][n % 3 == 0],
            labels=["x"] if n % 5 == 0 else [],
            status=["available", "failed", "uploading", "deleted"][n % 4],
        )
    make_image(other_tenant, name="img-3", sharing="global", os_type="windows", labels=["x"])
    make_image(other_tenant, name="img-2", sharing="global", status="failed")
    make_image(other_tenant, name="img-1", sharing="tenants", shared_with=[tenant], kind="iso")
    make_image(other_tenant, name="img-0")
    scoped = services.membership_add(tenant=tenant, user=make_user("scoped"), project_groups=[team])
    for membership in (None, scoped):
        request = RequestFactory().get("/")
        request.tenant, request.membership = tenant, membership
        filterset = ImageFilter(
            params, queryset=images_visible(tenant=tenant, membership=membership), request=request
        )
        expected = [image.pk for image in filterset.qs]
        listing = image_listing(tenant=tenant, membership=membership, filterset=filterset)
        assert listing.count() == len(expected)
        assert [image.pk for image in listing[0 : len(expected) + 5]] == expected
