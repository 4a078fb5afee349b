"""403, 404, 410 and 500 in the console's shell: translated, with the server's reason and a way back."""

import pytest
from django.test import Client
from django.urls import path

from imageconsole.errors import Gone
from imageconsole.urls import urlpatterns as console_urlpatterns
from images.models import Image


def _gone(request):
    raise Gone("This download link expired.")


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [*console_urlpatterns, path("test-gone/", _gone), path("test-boom/", _boom)]
handler403 = "imageconsole.errors.permission_denied"
handler404 = "imageconsole.errors.page_not_found"
handler500 = "imageconsole.errors.server_error"


def _in_shell(html: str) -> bool:
    return 'data-testid="error-page"' in html and 'data-testid="main-nav"' in html


@pytest.mark.django_db
def test_view_only_account_on_an_edit_url_sees_the_reason(subaccount_client, tenant):
    image = Image.objects.create(tenant=tenant, name="web", disk_format="qcow2", status="available")
    response = subaccount_client.get(f"/images/{image.pk}/edit/", HTTP_REFERER="http://testserver/images/")
    assert response.status_code == 403
    html = response.content.decode()
    assert _in_shell(html)
    assert "Your account may view this tenant&#x27;s resources but not change them." in html
    assert 'href="http://testserver/images/" data-testid="error-back"' in html


@pytest.mark.django_db
def test_404_in_the_shell_with_the_reason_in_chinese(owner_client):
    owner_client.cookies["django_language"] = "zh-hans"
    response = owner_client.get("/images/00000000-0000-4000-8000-000000000000/")
    assert response.status_code == 404
    html = response.content.decode()
    assert _in_shell(html)
    assert "找不到" in html or "不存在" in html
    assert "Not found" not in html


@pytest.mark.django_db
def test_unknown_address_is_a_404_without_a_programmers_reason(owner_client):
    response = owner_client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert _in_shell(html) and "Resolver404" not in html and "tried" not in html


@pytest.mark.django_db
@pytest.mark.urls("tests.test_error_pages")
def test_410_with_the_reason(owner_client):
    response = owner_client.get("/test-gone/")
    assert response.status_code == 410
    html = response.content.decode()
    assert _in_shell(html) and "This download link expired." in html


@pytest.mark.django_db
@pytest.mark.urls("tests.test_error_pages")
def test_500_page_is_the_consoles(owner):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    response = client.get("/test-boom/")
    assert response.status_code == 500
    html = response.content.decode()
    assert 'data-testid="error-page"' in html and "Something went wrong on the server" in html
    assert "a bug" not in html
