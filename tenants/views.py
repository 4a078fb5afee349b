from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View

from . import selectors, services
from .forms import ProjectGroupForm, SwitchTenantForm
from .models import OperationLog
from .oplog import action_label, registered_actions
from .permissions import (
    ManageRequiredMixin,
    TenantRequiredMixin,
    can_manage,
    get_scoped_or_404,
    require_manage,
)

PAGE_SIZES = (20, 50, 100)


def paginate(request, queryset, default_size: int = 20):
    """A page of `queryset`, never a 500: bad page numbers fall back as Paginator.get_page does."""
    try:
        size = int(request.GET.get("page_size", default_size))
    except ValueError:
        size = default_size
    if size not in PAGE_SIZES:
        size = default_size
    return Paginator(queryset, size).get_page(request.GET.get("page"))


class SwitchTenantView(TenantRequiredMixin, View):
    def post(self, request):
        form = SwitchTenantForm(request.POST)
        if (
            form.is_valid()
            and selectors.tenants_for_user(request.user).filter(pk=form.cleaned_data["tenant"]).exists()
        ):
            request.session[selectors.SESSION_TENANT_KEY] = form.cleaned_data["tenant"]
        else:
            messages.error(request, _("You cannot work in that tenant."))
        target = request.POST.get("next") or reverse("dashboard")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("dashboard")
        return HttpResponseRedirect(target)


class ProjectGroupListView(TenantRequiredMixin, View):
    def get(self, request):
        groups = selectors.project_groups_visible(tenant=request.tenant, membership=request.membership)
        return render(
            request,
            "tenants/project_group_list.html",
            {"page": paginate(request, groups), "can_manage": can_manage(request)},
        )


class ProjectGroupCreateView(ManageRequiredMixin, View):
    manage_methods_only = False

    def get(self, request):
        return render(
            request, "tenants/project_group_form.html", {"form": ProjectGroupForm(tenant=request.tenant)}
        )

    def post(self, request):
        form = ProjectGroupForm(request.POST, tenant=request.tenant)
        if not form.is_valid():
            return render(request, "tenants/project_group_form.html", {"form": form}, status=400)
        group = services.project_group_create(tenant=request.tenant, request=request, **form.cleaned_data)
        messages.success(request, _("Project group “%(name)s” created.") % {"name": group.name})
        return redirect("tenants:project_groups")


class ProjectGroupEditView(TenantRequiredMixin, View):
    def get_group(self, request, pk):
        # Look up first: another tenant's group is "not found" even for someone who may not edit.
        group = get_scoped_or_404(
            selectors.project_groups_visible(tenant=request.tenant, membership=request.membership), pk=pk
        )
        require_manage(request)
        return group

    def get(self, request, pk):
        group = self.get_group(request, pk)
        form = ProjectGroupForm(instance=group, tenant=request.tenant)
        return render(request, "tenants/project_group_form.html", {"form": form, "group": group})

    def post(self, request, pk):
        group = self.get_group(request, pk)
        form = ProjectGroupForm(request.POST, instance=group, tenant=request.tenant)
        if not form.is_valid():
            return render(
                request, "tenants/project_group_form.html", {"form": form, "group": group}, status=400
            )
        services.project_group_update(group=group, request=request, **form.cleaned_data)
        messages.success(request, _("Project group “%(name)s” saved.") % {"name": group.name})
        return redirect("tenants:project_groups")


class ProjectGroupDeleteView(ProjectGroupEditView):
    def get(self, request, pk):
        group = self.get_group(request, pk)
        return render(request, "tenants/project_group_confirm_delete.html", {"group": group})

    def post(self, request, pk):
        group = self.get_group(request, pk)
        name = group.name
        services.project_group_delete(group=group, request=request)
        messages.success(request, _("Project group “%(name)s” deleted.") % {"name": name})
        return redirect("tenants:project_groups")


class MemberListView(TenantRequiredMixin, View):
    def get(self, request):
        members = selectors.members_of(tenant=request.tenant)
        return render(request, "tenants/member_list.html", {"page": paginate(request, members)})


class OperationLogView(TenantRequiredMixin, View):
    def get(self, request):
        logs = selectors.operation_logs(tenant=request.tenant)
        result = request.GET.get("result", "")
        if result in OperationLog.Result.values:
            logs = logs.filter(result=result)
        query = request.GET.get("q", "").strip()
        if query:
            # The action as the reader sees it (its label in their language) or as its code.
            codes = [code for code in registered_actions() if query.lower() in action_label(code).lower()]
            logs = logs.filter(
                Q(target_name__icontains=query)
                | Q(action__icontains=query)
                | Q(action__in=codes)
                | Q(message__icontains=query)
            )
        return render(
            request,
            "tenants/operation_log.html",
            {
                "page": paginate(request, logs, default_size=50),
                "results": OperationLog.Result.choices,
                "result": result,
                "q": query,
            },
        )


class EmptyPage(TenantRequiredMixin, View):
    """A console page a later part of the product fills; until then it says so."""

    title = ""
    text = ""

    def get(self, request):
        return render(request, "console/empty_page.html", {"title": self.title, "text": self.text})
