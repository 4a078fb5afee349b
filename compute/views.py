"""VM pages: the list (filters, polling rows), the Create VM wizard, the detail page with the guest's
screen and serial console, and the actions. Every VM is found through the tenant-scoped selector first:
another tenant's VM is a 404 for everyone."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from images.models import Image
from images.selectors import images_visible
from tenants.permissions import ManageRequiredMixin, TenantRequiredMixin, can_manage, require_manage
from tenants.selectors import project_groups_visible

from .forms import VMCaptureForm, VMCreateForm
from .models import VirtualMachine
from .policy import vm_actions
from .selectors import hosts_for_placement, vm_get, vms_visible
from .services import capture
from .services.vms import (
    VMActionRefused,
    min_disk_gb,
    vm_console_tail,
    vm_create,
    vm_refresh_states,
    vm_screenshot,
)

PAGE_SIZE = 20


def usable_images(request):
    """Images a VM can be created from: the tenant's own and shared ones, available, enabled, system."""
    return (
        images_visible(tenant=request.tenant, membership=request.membership)
        .filter(status=Image.Status.AVAILABLE, enabled=True, kind=Image.Kind.SYSTEM)
        .order_by("name", "pk")
    )


def _image_or_none(request, value):
    if not value:
        return None
    try:
        return usable_images(request).get(pk=value)
    except (Image.DoesNotExist, ValueError, ValidationError):
        return None


def _decorate(request, vms):
    for vm in vms:
        vm.actions = vm_actions(request, vm)
    return vms


class VMListView(TenantRequiredMixin, View):
    def get(self, request):
        queryset = vms_visible(tenant=request.tenant, membership=request.membership)
        state = request.GET.get("state", "")
        if state in VirtualMachine.State.values:
            queryset = queryset.filter(state=state)
        query = request.GET.get("q", "").strip()
        if query:
            queryset = queryset.filter(name__icontains=query)
        groups = project_groups_visible(tenant=request.tenant, membership=request.membership)
        group = request.GET.get("project_group", "")
        if group.isdigit():
            queryset = queryset.filter(project_group_id=int(group))
        page = Paginator(queryset.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(request.GET.get("page"))
        return render(
            request,
            "compute/list.html",
            {
                "page": page,
                "vms": _decorate(request, list(page.object_list)),
                "states": VirtualMachine.State.choices,
                "state": state,
                "q": query,
                "groups": groups,
                "group": group,
                "can_manage": can_manage(request),
                "images": usable_images(request)[:200] if can_manage(request) else [],
            },
        )


class VMRowView(TenantRequiredMixin, View):
    """One row of the list, polled while the VM is being created."""

    def get(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        return render(request, "compute/row.html", {"vm": _decorate(request, [vm])[0]})


class VMCreateView(ManageRequiredMixin, View):
    manage_methods_only = False

    def _render(self, request, image, form, status=200):
        context = {"image": image, "form": form, "images": usable_images(request)[:200]}
        if image is not None:
            context["min_disk_gb"] = min_disk_gb(image)
        return render(request, "compute/create.html", context, status=status)

    def _form(self, request, image, data=None):
        hosts = list(hosts_for_placement())
        form = VMCreateForm(data, hosts=hosts, image=image)
        if image is not None and data is None:
            form.initial["disk_gb"] = min_disk_gb(image)
        return form

    def get(self, request):
        image = _image_or_none(request, request.GET.get("image"))
        if request.GET.get("image") and image is None:
            raise Http404("No such image.")
        return self._render(request, image, self._form(request, image) if image else None)

    def post(self, request):
        image = _image_or_none(request, request.POST.get("image"))
        if image is None:
            raise Http404("No such image.")
        form = self._form(request, image, request.POST)
        if not form.is_valid():
            return self._render(request, image, form, status=400)
        data = form.cleaned_data
        try:
            vm = vm_create(
                tenant=request.tenant,
                image=image,
                name=data["name"],
                vcpus=data["vcpus"],
                memory_mib=data["memory_mib"],
                disk_gb=data["disk_gb"],
                host=form.chosen_host(),
                hosts=form.hosts.values(),
                network=data["network"],
                admin_password="" if form.fields["admin_password"].disabled else data["admin_password"],
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.error_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, error)
            return self._render(request, image, form, status=400)
        messages.success(request, _("Creating the VM “%(name)s”.") % {"name": vm.name})
        return redirect("compute:detail", pk=vm.pk)


def _detail_context(request, vm):
    return {
        "vm": vm,
        "actions": vm_actions(request, vm),
        "can_manage": can_manage(request),
        "exports": list(vm_exports_visible(request, vm)),
    }


class VMDetailView(TenantRequiredMixin, View):
    def get(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        if vm.state != VirtualMachine.State.CREATING:
            vm_refresh_states(vms=VirtualMachine.objects.filter(pk=vm.pk))
            vm.refresh_from_db()
        return render(request, "compute/detail.html", _detail_context(request, vm))


class VMSummaryView(TenantRequiredMixin, View):
    """The detail page's summary and console, polled: state from libvirt, the console's last lines."""

    def get(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        if vm.state != VirtualMachine.State.CREATING:
            vm_refresh_states(vms=VirtualMachine.objects.filter(pk=vm.pk))
            vm.refresh_from_db()
        context = _detail_context(request, vm)
        context["console"] = vm_console_tail(vm=vm) if vm.state != VirtualMachine.State.CREATING else []
        return render(request, "compute/summary.html", context)


class VMScreenView(TenantRequiredMixin, View):
    """The guest's screen as PNG (virDomainScreenshot); 204 when there is none to show."""

    def get(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        png = vm_screenshot(vm=vm) if vm.state == VirtualMachine.State.RUNNING else None
        # No screen to show (not running, or the host does not answer): nothing, not an error.
        response = HttpResponse(png, content_type="image/png") if png else HttpResponse(status=204)
        response["Cache-Control"] = "no-store"
        return response


ACTIONS = {
    "start": gettext_lazy("Started “%(name)s”."),
    "stop": gettext_lazy("Stopping “%(name)s”: it is asked to shut down and powered off if it does not."),
    "reboot": gettext_lazy(
        "Rebooting “%(name)s”: it is asked to restart through ACPI and reset if it does not react."
    ),
}


class VMActionView(TenantRequiredMixin, View):
    action = ""

    def post(self, request, pk):
        from .services import vms as vm_services

        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage(request)
        vm = vm_services.vm_refresh(vm)
        if not vm_actions(request, vm)[self.action]:
            messages.error(
                request,
                _("“%(name)s” is %(state)s: this action is not possible now.")
                % {"name": vm.name, "state": vm.get_state_display()},
            )
            return redirect("compute:detail", pk=vm.pk)
        try:
            getattr(vm_services, f"vm_{self.action}")(vm=vm, actor=request.user, request=request)
        except VMActionRefused as error:
            messages.error(request, str(error))
        else:
            messages.success(request, str(ACTIONS[self.action]) % {"name": vm.name})
        if request.POST.get("next") == "list":
            return redirect("compute:list")
        return redirect("compute:detail", pk=vm.pk)


class VMDeleteView(TenantRequiredMixin, View):
    def _vm(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage(request)
        if not vm_actions(request, vm)["delete"]:
            raise PermissionDenied(_("The VM is being created; delete it when that ends."))
        return vm

    def get(self, request, pk):
        return render(request, "compute/delete.html", {"vm": self._vm(request, pk)})

    def post(self, request, pk):
        from .services.vms import vm_delete

        vm = self._vm(request, pk)
        try:
            vm_delete(vm=vm, actor=request.user, request=request)
        except VMActionRefused as error:
            messages.error(request, str(error))
            return redirect("compute:detail", pk=vm.pk)
        messages.success(request, _("Deleted the VM “%(name)s”.") % {"name": vm.name})
        return redirect("compute:list")


class VMCaptureView(TenantRequiredMixin, View):
    """Create image from VM (stopped VMs)."""

    def _vm(self, request, pk):
        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage(request)
        return vm

    def get(self, request, pk):
        vm = self._vm(request, pk)
        form = VMCaptureForm(initial={"name": f"{vm.name}-image"})
        return render(
            request, "compute/capture.html", {"vm": vm, "form": form, "actions": vm_actions(request, vm)}
        )

    def post(self, request, pk):
        vm = self._vm(request, pk)
        form = VMCaptureForm(request.POST)
        if form.is_valid():
            try:
                image = capture.vm_capture(
                    vm=vm,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    actor=request.user,
                    request=request,
                )
            except VMActionRefused as error:
                form.add_error(None, str(error))
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    for field, errors in error.error_dict.items():
                        form.add_error(field if field in form.fields else None, errors)
                else:
                    form.add_error(None, error)
            else:
                messages.success(
                    request, _("Creating the image “%(name)s” from the VM.") % {"name": image.name}
                )
                return redirect("images:detail", pk=image.pk)
        return render(
            request,
            "compute/capture.html",
            {"vm": vm, "form": form, "actions": vm_actions(request, vm)},
            status=400,
        )


# --- boot check ----------------------------------------------------------------------------------------


def _own_image(request, pk) -> Image:
    from images.selectors import images_owned

    try:
        return images_owned(tenant=request.tenant, membership=request.membership).get(pk=pk)
    except (Image.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such image.") from error


class BootCheckStartView(TenantRequiredMixin, View):
    def post(self, request, pk):
        from .services.bootcheck import boot_check_start

        image = _own_image(request, pk)
        require_manage(request)
        try:
            boot_check_start(image=image, actor=request.user, request=request)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, _("Boot check of “%(name)s” started.") % {"name": image.name})
        return redirect("images:detail", pk=image.pk)


class BootCheckPanelView(TenantRequiredMixin, View):
    def get(self, request, pk):
        from .sections import boot_check_context

        image = _own_image(request, pk)
        return render(request, "compute/boot_check.html", boot_check_context(request, image))


class BootCheckScreenView(TenantRequiredMixin, View):
    field = "screenshot"

    def get(self, request, pk):
        from .models import BootCheck

        try:
            check = BootCheck.objects.get(pk=pk, tenant=request.tenant)
        except (BootCheck.DoesNotExist, ValueError, ValidationError) as error:
            raise Http404("No such boot check.") from error
        _own_image(request, check.image_id)  # a sub-account sees only its project groups' images
        data = getattr(check, self.field)
        if not data:
            return HttpResponse(status=204)
        return HttpResponse(bytes(data), content_type="image/png")


# --- OVA export ----------------------------------------------------------------------------------------


def vm_exports_visible(request, vm):
    """The VM's OVA exports (exports of its image) this account may see."""
    from images.downloads.selectors import exports_visible
    from images.models import ExportedImage

    return exports_visible(tenant=request.tenant, membership=request.membership).filter(
        source_id=vm.pk, format=ExportedImage.Format.OVA
    )


class VMExportView(TenantRequiredMixin, View):
    def post(self, request, pk):
        from .services.ova import vm_export_start

        vm = vm_get(tenant=request.tenant, membership=request.membership, pk=pk)
        require_manage(request)
        try:
            vm_export_start(vm=vm, actor=request.user, request=request)
        except VMActionRefused as error:
            messages.error(request, str(error))
        else:
            messages.success(
                request,
                _(
                    "Exporting “%(name)s” as an OVA template; it appears under Exported in the image list "
                    "when it is ready."
                )
                % {"name": vm.name},
            )
        return redirect("compute:detail", pk=vm.pk)
