from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from compute.models import ComputeHost
from compute.services.hosts import host_create, host_reconnect


class Command(BaseCommand):
    help = (
        "Add a KVM compute host reached through libvirt and connect to it: `--name N --uri qemu:///system` "
        "(or qemu+ssh://user@host/system). An existing host of that name is reconnected."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--uri", default="qemu:///system")
        parser.add_argument("--pool", default="imageconsole", help="libvirt storage pool (created when missing)")
        parser.add_argument("--pool-path", default="/var/lib/libvirt/images/imageconsole")
        parser.add_argument("--network", default="", help="libvirt network for VM NICs (empty: no NIC)")
        parser.add_argument("--virt-type", default="auto", choices=ComputeHost.VirtType.values)

    def handle(self, *args, **options):
        existing = ComputeHost.objects.filter(name=options["name"]).first()
        if existing is not None:
            host = host_reconnect(host=existing)
        else:
            try:
                host = host_create(
                    name=options["name"],
                    uri=options["uri"],
                    pool_name=options["pool"],
                    pool_path=options["pool_path"],
                    network=options["network"],
                    virt_type=options["virt_type"],
                )
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from error
        if host.state != ComputeHost.State.CONNECTED:
            raise CommandError(f"{host.name}: {host.state_reason}")
        self.stdout.write(
            f"{host.name}: connected ({host.uri}), {host.domain_type}: {host.domain_type_reason}; "
            f"{host.cpus} CPUs, pool {host.pool_name}"
        )
