from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views import View

from images.models import Image
from images.selectors import image_status_counts
from tenants.permissions import TenantRequiredMixin


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True


class DashboardView(TenantRequiredMixin, View):
    def get(self, request):
        counts = image_status_counts(tenant=request.tenant, membership=request.membership)
        cards = [(value, label, counts[value]) for value, label in Image.Status.choices]
        return render(request, "console/dashboard.html", {"cards": cards})


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
