from django.contrib.auth import views as auth_views
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import render
from django.views import View

from tenants.permissions import TenantRequiredMixin


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True


class DashboardView(TenantRequiredMixin, View):
    def get(self, request):
        from images.models import Image

        counts = dict.fromkeys(Image.Status.values, 0)
        rows = Image.objects.for_tenant(request.tenant).values("status").order_by().annotate(n=Count("pk"))
        for row in rows:
            counts[row["status"]] = row["n"]
        cards = [(value, label, counts[value]) for value, label in Image.Status.choices]
        return render(request, "console/dashboard.html", {"cards": cards})


def healthz(request):
    return JsonResponse({"ok": True})
