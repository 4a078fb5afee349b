"""What the compute app adds to an image's detail page (through images.hooks): the VMs built on the
image, and its boot check."""

from django.template.loader import render_to_string

from tenants.permissions import can_manage

from .models import BootCheck, ComputeHost, VirtualMachine


def boot_check_context(request, image) -> dict:
    return {
        "image": image,
        "check": BootCheck.objects.filter(image=image).defer("screenshot", "thumbnail").first(),
        "can_check": can_manage(request)
        and image.status == "available"
        and image.kind == "system"
        and ComputeHost.objects.filter(enabled=True, state=ComputeHost.State.CONNECTED).exists(),
    }


def image_detail_section(*, request, image) -> str:
    vms = VirtualMachine.objects.filter(tenant=request.tenant, image=image).order_by("name")
    context = {"vms": vms, **boot_check_context(request, image)}
    return render_to_string("compute/image_section.html", context, request=request)
