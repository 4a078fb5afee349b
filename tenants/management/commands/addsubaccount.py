from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants import services
from tenants.models import Membership, ProjectGroup, Tenant


class Command(BaseCommand):
    help = "Add a sub-account to a tenant: view-only unless --manage is given."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant name.")
        parser.add_argument("username")
        parser.add_argument("--password", help="Password for a new user; omit to add an existing user.")
        parser.add_argument(
            "--manage",
            action="store_true",
            help="Allow importing, editing, deleting and exporting (every sub-account may download).",
        )
        parser.add_argument(
            "--project-group", action="append", default=[], help="Limit to this group (repeatable)."
        )

    def handle(self, *args, tenant, username, password, manage, project_group, **options):
        tenant_obj = Tenant.objects.filter(name=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant named {tenant!r}.")
        groups = list(ProjectGroup.objects.filter(tenant=tenant_obj, name__in=project_group))
        missing = set(project_group) - {g.name for g in groups}
        if missing:
            raise CommandError(f"Tenant {tenant!r} has no project group named {', '.join(sorted(missing))}.")
        User = get_user_model()
        try:
            with transaction.atomic():
                user = User.objects.filter(username=username).first()
                if user is None:
                    if not password:
                        raise CommandError(f"User {username!r} does not exist: give --password to create it.")
                    user = services.user_create(username=username, password=password)
                services.membership_add(
                    tenant=tenant_obj,
                    user=user,
                    role=Membership.Role.SUBACCOUNT,
                    permission=Membership.Permission.MANAGE if manage else Membership.Permission.VIEW,
                    project_groups=groups,
                )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        permission = "manage" if manage else "view"
        self.stdout.write(f"{username!r} is now a sub-account of {tenant!r} with {permission} permission.")
