"""Tenant-scoped reads of VMs and the hosts a tenant may place VMs on."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404

from tenants.models import Membership, Tenant
from tenants.selectors import scope_q

from .models import ComputeHost, VirtualMachine


def vms_visible(*, tenant: Tenant, membership: Membership | None) -> QuerySet[VirtualMachine]:
    """The tenant's VMs this membership may see (within a sub-account's project groups)."""
    return (
        VirtualMachine.objects.filter(tenant=tenant)
        .filter(scope_q(membership, field="project_group"))
        .select_related("image", "host", "project_group")
    )


def vm_get(*, tenant: Tenant, membership: Membership | None, pk) -> VirtualMachine:
    try:
        return vms_visible(tenant=tenant, membership=membership).get(pk=pk)
    except (VirtualMachine.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such VM.") from error


def hosts_for_placement() -> QuerySet[ComputeHost]:
    """Hosts a tenant may place VMs on: enabled ones (their state says whether they answer)."""
    return ComputeHost.objects.filter(enabled=True).order_by("name", "pk")


def vm_names_by_image(*, tenant: Tenant, image) -> list[VirtualMachine]:
    return list(VirtualMachine.objects.filter(tenant=tenant, image=image).order_by("name"))
