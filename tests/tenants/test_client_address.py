"""Behind a TLS proxy the client's address is the entry our proxy appended to X-Forwarded-For, never the
proxy's own address (one client's failed logins would lock everyone out) nor the entry the client wrote
itself (it could pin its failures, or its log rows, on someone else)."""

import pytest
from django.test import Client, RequestFactory

from imageconsole.core.http import client_ip
from tenants.models import OperationLog
from tests.conftest import PASSWORD

PROXY = "127.0.0.1"


def request_from(remote, forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    "trusted, remote, forwarded, expected",
    [
        (0, "203.0.113.9", "1.1.1.1", "203.0.113.9"),  # no proxy: the header is the client's invention
        (1, PROXY, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the proxy's entry, not the client's
        (1, PROXY, "203.0.113.9", "203.0.113.9"),
        (2, PROXY, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, PROXY, "203.0.113.9", "203.0.113.9"),  # a shorter chain
        (1, PROXY, "6.6.6.6, not-an-address", PROXY),  # a broken entry from our proxy: its own address
        (["127.0.0.0/8", "10.0.0.0/8"], PROXY, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (["10.0.0.0/8"], "198.51.100.4", "203.0.113.9", "198.51.100.4"),  # not through our proxy
        (["127.0.0.1"], PROXY, "[2001:db8::5]:4711", "2001:db8::5"),
    ],
)
def test_client_address(settings, trusted, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    assert client_ip(request_from(remote, forwarded)) == expected


def login(client, address, password, spoofed="6.6.6.6"):
    return client.post(
        "/accounts/login/",
        {"username": "acme-owner", "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"{spoofed}, {address}",
        HTTP_X_FORWARDED_PROTO="https",
    )


def test_failed_logins_behind_the_proxy_lock_out_only_their_client(owner, settings):
    settings.TRUSTED_PROXIES = 1
    attacker = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        # Changing the first X-Forwarded-For entry on each try does not escape the lock-out.
        response = login(attacker, "203.0.113.66", "wrong", spoofed=f"6.6.6.{attempt}")
    assert response.status_code == 429
    assert login(Client(), "203.0.113.66", PASSWORD).status_code == 429

    # The owner, through the same proxy from another address, still logs in.
    response = login(Client(), "198.51.100.7", PASSWORD)
    assert response.status_code == 302


def test_the_operation_log_records_the_address_the_proxy_saw(owner_client, settings):
    settings.TRUSTED_PROXIES = 1
    owner_client.post(
        "/tenants/project-groups/new/",
        {"name": "ops"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7",
    )
    entry = OperationLog.objects.get(action="project_group.create")
    assert entry.client_ip == "198.51.100.7"
