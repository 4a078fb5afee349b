from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from tenants import services
from tenants.models import Membership, Tenant

DEMO_ACCOUNTS = [
    ("admin", "admin-demo-password", "platform administrator (Django admin at /admin/)"),
    ("demo-owner", "owner-demo-password", "owner of tenant 'demo'"),
    ("demo-viewer", "viewer-demo-password", "sub-account of tenant 'demo' with view permission"),
]


class Command(BaseCommand):
    help = "Create, once, a demo platform administrator and a demo tenant with an owner and a sub-account."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "", DEMO_ACCOUNTS[0][1])
        tenant = Tenant.objects.filter(name="demo").first() or services.tenant_create(name="demo")
        for username, password, _role in DEMO_ACCOUNTS[1:]:
            if not User.objects.filter(username=username).exists():
                user = services.user_create(username=username, password=password)
                role = Membership.Role.OWNER if username == "demo-owner" else Membership.Role.SUBACCOUNT
                services.membership_add(tenant=tenant, user=user, role=role)
        self._ensure_storage()
        self.stdout.write("Demo accounts (created once; change their passwords for anything but a demo):")
        for username, password, role in DEMO_ACCOUNTS:
            self.stdout.write(f"  {username:12} {password:22} {role}")

    def _ensure_storage(self):
        """A standalone storage under STORAGE_ROOT, so that imports work out of the box."""
        try:
            from storage import services as storage_services
        except ImportError:
            return
        create = getattr(storage_services, "storage_create_default", None)
        if create is not None:
            create()
