from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views import View

from images.models import Image
from images.selectors import image_status_counts
from tenants.permissions import TenantRequiredMixin

from . import charts


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True


class DashboardView(TenantRequiredMixin, View):
    """The overview: counts by status, storage usage, imports in progress, recent failures, the recycle
    bin, and charts (images and bytes per month, per format) drawn as SVG on the server.

    `admin_panels` is where platform administrators' panels go (templates included for staff only)."""

    admin_panels: list[str] = ["console/health_panel_card.html"]

    def get(self, request):
        from images import selectors as images
        from storage.selectors import storage_list_for_tenant, storage_usage, usage_bars

        tenant, membership = request.tenant, request.membership
        counts = image_status_counts(tenant=tenant, membership=membership)
        cards = [(value, label, counts[value]) for value, label in Image.Status.choices if value != "deleted"]
        months = images.images_per_month(tenant=tenant, membership=membership)
        formats = images.images_per_format(tenant=tenant, membership=membership)
        storages = [
            (storage, usage_bars(storage_usage(storage=storage)))
            for storage in storage_list_for_tenant(tenant=tenant)[:6]
        ]
        context = {
            "cards": cards,
            "total": sum(n for value, _label, n in cards),
            "recycle_bin_count": counts.get("deleted", 0),
            "in_progress": images.images_in_progress(tenant=tenant, membership=membership),
            "failures": images.recent_failures(tenant=tenant, membership=membership),
            "storages": storages,
            "has_images": any(point["images"] for point in months) or bool(formats),
            "images_chart": charts.column_chart(
                [(_month(point["month"]), point["images"]) for point in months],
                title=_("Images created per month"),
                testid="chart-images-per-month",
            ),
            "bytes_chart": charts.column_chart(
                [(_month(point["month"]), point["bytes"]) for point in months],
                title=_("Bytes stored per month"),
                value_text=lambda v: str(filesizeformat(v)),
                testid="chart-bytes-per-month",
            ),
            "formats_chart": charts.bar_chart(
                [(row["format"], row["images"]) for row in formats],
                title=_("Images per format"),
                testid="chart-formats",
            ),
            "admin_panels": self.admin_panels if request.user.is_staff else [],
        }
        return render(request, "console/dashboard.html", context)


def _month(value) -> str:
    return date_format(value, "YEAR_MONTH_FORMAT_SHORT")


class HealthPanelView(LoginRequiredMixin, View):
    """The administrators' health panel: what `manage.py doctor` prints, as a fragment the dashboard loads."""

    probe_timeout = 5.0

    def get(self, request):
        if not request.user.is_staff:
            raise Http404
        from imageconsole.health import Status, run_checks

        checks = run_checks(probe_timeout=self.probe_timeout)
        problems = sum(1 for check in checks if check.status == Status.PROBLEM)
        return render(request, "console/health_panel.html", {"checks": checks, "problems": problems})


def healthz(request):
    return JsonResponse({"ok": True})
