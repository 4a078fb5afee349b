from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants import services
from tenants.models import Membership


class Command(BaseCommand):
    help = "Create a tenant and its owner (a new user, or an existing one when no password is given)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="Username of the tenant's owner.")
        parser.add_argument("--password", help="Password for a new owner account.")
        parser.add_argument("--description", default="")

    def handle(self, *args, name, owner, password, description, **options):
        User = get_user_model()
        try:
            with transaction.atomic():
                tenant = services.tenant_create(name=name, description=description)
                user = User.objects.filter(username=owner).first()
                if user is None:
                    if not password:
                        raise CommandError(f"User {owner!r} does not exist: give --password to create it.")
                    user = services.user_create(username=owner, password=password)
                services.membership_add(tenant=tenant, user=user, role=Membership.Role.OWNER)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(f"Tenant {tenant.name!r} (id {tenant.pk}) created with owner {user.username!r}.")
