import pytest

from images.models import Image
from tenants.models import Quota
from tenants.services import QuotaExceeded, quota_check, quota_update


def _image(tenant, size):
    return Image.objects.create(tenant=tenant, name=f"img-{size}", disk_format="qcow2", size=size)


def test_no_limits_means_anything_goes(tenant):
    quota_check(tenant=tenant, add_images=1000, add_bytes=10**15)


def test_image_count_limit(tenant):
    quota_update(tenant=tenant, max_images=2, max_bytes=None)
    _image(tenant, 1)
    quota_check(tenant=tenant, add_images=1)
    _image(tenant, 2)
    with pytest.raises(QuotaExceeded) as excinfo:
        quota_check(tenant=tenant, add_images=1)
    assert "allows 2 images" in excinfo.value.messages[0]


def test_byte_limit_counts_existing_images(tenant, other_tenant):
    quota_update(tenant=tenant, max_images=None, max_bytes=10 * 1024**3)
    _image(tenant, 6 * 1024**3)
    _image(other_tenant, 9 * 1024**3)  # another tenant's images do not count
    quota_check(tenant=tenant, add_bytes=4 * 1024**3)
    with pytest.raises(QuotaExceeded) as excinfo:
        quota_check(tenant=tenant, add_bytes=5 * 1024**3)
    assert (
        "needs 5.0\xa0GB more but the tenant's quota leaves 4.0\xa0GB of 10.0\xa0GB"
        in excinfo.value.messages[0]
    )


def test_sizes_that_round_alike_are_told_apart(tenant):
    # One byte too many: "needs 4.0 GB more but ... leaves 4.0 GB" would say nothing.
    quota_update(tenant=tenant, max_images=None, max_bytes=10 * 1024**3)
    _image(tenant, 6 * 1024**3)
    with pytest.raises(QuotaExceeded) as excinfo:
        quota_check(tenant=tenant, add_bytes=4 * 1024**3 + 1)
    message = excinfo.value.messages[0]
    assert "needs 4,294,967,297 bytes more" in message and "leaves 4,294,967,296 bytes of" in message


def test_every_tenant_gets_a_quota_row(tenant):
    assert Quota.objects.filter(tenant=tenant).exists()
