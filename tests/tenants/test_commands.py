import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tenants.models import Membership, Tenant


def test_createtenant_and_addsubaccount(db):
    call_command("createtenant", "initech", "--owner", "peter", "--password", "s3cret-Passw0rd")
    tenant = Tenant.objects.get(name="initech")
    owner = Membership.objects.get(tenant=tenant, user__username="peter")
    assert owner.role == Membership.Role.OWNER
    call_command("addsubaccount", "initech", "milton", "--password", "stapler-Passw0rd")
    call_command("addsubaccount", "initech", "bill", "--password", "tps-Reports-9", "--manage")
    viewer = Membership.objects.get(tenant=tenant, user__username="milton")
    manager = Membership.objects.get(tenant=tenant, user__username="bill")
    assert not viewer.can_manage and manager.can_manage
    assert get_user_model().objects.get(username="milton").check_password("stapler-Passw0rd")


def test_command_errors_are_clear(db):
    call_command("createtenant", "initech", "--owner", "peter", "--password", "s3cret-Passw0rd")
    with pytest.raises(CommandError, match="already exists"):
        call_command("createtenant", "initech", "--owner", "other", "--password", "s3cret-Passw0rd")
    with pytest.raises(CommandError, match="No tenant named"):
        call_command("addsubaccount", "nope", "x", "--password", "p")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("addsubaccount", "initech", "ghost")
    with pytest.raises(CommandError, match="No user named"):
        call_command("createapitoken", "ghost")
    assert Tenant.objects.count() == 1


def test_demo_command_is_idempotent(db, capsys):
    call_command("demo")
    call_command("demo")
    assert Tenant.objects.filter(name="demo").count() == 1
    assert Membership.objects.filter(tenant__name="demo").count() == 2
    assert "demo-owner" in capsys.readouterr().out
