"""Django admin: administrators change the link validity, revoke links and delete exports."""

from django.test import Client

from images.downloads import services
from images.models import DownloadLink, DownloadSettings
from tenants.models import OperationLog

from .conftest import MiB


def test_administrator_changes_the_link_validity(admin_client, owner_client, standalone, store_image):
    assert admin_client.get("/admin/images/downloadsettings/").status_code == 200
    response = admin_client.post(
        "/admin/images/downloadsettings/1/change/",
        {"link_validity_hours": "48", "export_retention_days": "0"},
    )
    assert response.status_code == 302
    assert DownloadSettings.current().link_validity_hours == 48
    entry = OperationLog.objects.get(action="images.download_settings")
    assert entry.actor.is_staff and "48 hours" in entry.display_message
    image = store_image(standalone, size=1 * MiB)
    assert "48 hours" in owner_client.get(f"/images/{image.pk}/download/").content.decode()


def test_administrator_revokes_links(admin_client, standalone, store_image):
    image = store_image(standalone, size=1 * MiB)
    link, token = services.link_create(image=image, actor=None)
    page = admin_client.get("/admin/images/downloadlink/").content.decode()
    assert link.filename in page and link.token_hash not in page
    admin_client.post("/admin/images/downloadlink/", {"action": "revoke", "_selected_action": [str(link.pk)]})
    assert DownloadLink.objects.get(pk=link.pk).revoked
    assert Client().get(services.link_path(link, token)).status_code == 410
