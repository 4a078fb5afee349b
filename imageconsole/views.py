from django.contrib.auth import views as auth_views
from django.http import JsonResponse
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


def healthz(request):
    return JsonResponse({"ok": True})
