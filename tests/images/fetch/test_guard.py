"""The SSRF guard. Loopback is exercised with real sockets that count connections; private and
link-local ranges are tested on address values only: nothing here connects outside loopback."""

import ipaddress
import socket

import pytest

from images.fetch import FetchError, FetchPolicy, URLRefused, fetch, guard, urls, validate

from .conftest import FileRoute, MemorySink, Redirect


@pytest.fixture
def any_port(settings):
    # Default address rules, but any port, so that the refusals below come from the address rule.
    settings.IMPORT_ALLOWED_PORTS = ["*"]
    settings.IMPORT_FETCH_RETRIES = 0
    settings.IMPORT_RETRY_DELAY = 0
    return settings


@pytest.mark.parametrize(
    ("host", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("2130706433", "loopback"),
        ("127.1", "loopback"),
        ("0x7f.1", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("[::ffff:127.0.0.1]", "loopback"),
    ],
)
def test_loopback_spellings_are_refused_before_any_connection(any_port, accept_recorder, host, category):
    recorder = accept_recorder("127.0.0.1")

    with pytest.raises(URLRefused) as refused:
        fetch(f"http://{host}:{recorder.port}/disk.qcow2", sink=MemorySink())

    assert (refused.value.rule, refused.value.category) == ("address", category)
    assert "rule: " in str(refused.value)
    assert recorder.accepted == 0


def test_ipv6_loopback_is_refused_before_any_connection(any_port, accept_recorder):
    recorder = accept_recorder("::1")

    with pytest.raises(URLRefused) as refused:
        fetch(f"http://[::1]:{recorder.port}/disk.qcow2", sink=MemorySink())

    assert refused.value.category == "loopback"
    assert recorder.accepted == 0


@pytest.mark.parametrize("host", ["127.1", "2130706433", "[::ffff:127.0.0.1]", "localhost"])
def test_allowed_network_lets_the_same_spellings_connect(any_port, accept_recorder, host):
    # The control for the test above: once loopback is allowed, the recorder does see the connection.
    any_port.IMPORT_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    recorder = accept_recorder("127.0.0.1")

    with pytest.raises(FetchError) as failed:
        fetch(f"http://{host}:{recorder.port}/disk.qcow2", sink=MemorySink())

    assert not isinstance(failed.value, URLRefused)
    assert recorder.accepted == 1


def test_default_ports_refuse_other_ports(settings, accept_recorder):
    settings.IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    recorder = accept_recorder("127.0.0.1")

    with pytest.raises(URLRefused) as refused:
        fetch(f"http://127.0.0.1:{recorder.port}/disk.qcow2", sink=MemorySink())
    assert refused.value.rule == "port"
    # The user is told what to do; the setting's name is for the administrator.
    assert "IMPORT_ALLOWED_PORTS" not in str(refused.value) and "administrator" in str(refused.value)
    assert refused.value.setting == "IMPORT_ALLOWED_PORTS"
    assert recorder.accepted == 0


def test_redirect_to_a_refused_loopback_address_is_refused(
    fetch_settings, http_server, accept_recorder, payload
):
    # 127.0.0.1 is allowed for the test; the redirect leads to 127.0.0.2, which is not.
    elsewhere = accept_recorder("127.0.0.2")
    server = http_server()
    server.routes["/disk.qcow2"] = Redirect(f"http://127.0.0.2:{elsewhere.port}/disk.qcow2")

    with pytest.raises(URLRefused) as refused:
        fetch(server.url("/disk.qcow2"), sink=MemorySink())

    assert (refused.value.rule, refused.value.category) == ("address", "loopback")
    # The message says the server sent us there: the URL the user gave was allowed.
    assert str(refused.value).startswith(
        f"The server redirected the download to http://127.0.0.2:{elsewhere.port}/"
    )
    assert elsewhere.accepted == 0
    assert len(server.requests) == 1


def test_redirect_to_a_name_that_resolves_to_a_refused_address_is_refused(
    fetch_settings, http_server, accept_recorder
):
    fetch_settings.IMPORT_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    target = accept_recorder("127.0.0.1")
    server = http_server("127.0.0.2")
    server.routes["/disk.qcow2"] = Redirect(f"http://localhost:{target.port}/disk.qcow2")

    with pytest.raises(URLRefused) as refused:
        fetch(server.url("/disk.qcow2"), sink=MemorySink())
    assert "localhost" in str(refused.value) and "127.0.0.1" in str(refused.value)
    assert "redirected the download to http://localhost:" in str(refused.value)
    assert target.accepted == 0


def test_redirect_within_allowed_addresses_is_followed(fetch_settings, http_server, payload):
    fetch_settings.IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32", "127.0.0.2/32"]
    mirror = http_server("127.0.0.2")
    mirror.routes["/disk.qcow2"] = FileRoute(payload)
    front = http_server()
    front.routes["/disk.qcow2"] = Redirect(mirror.url("/disk.qcow2"))
    sink = MemorySink()

    result = fetch(front.url("/disk.qcow2"), sink=sink)
    assert bytes(sink.buffer) == payload
    assert result.url == mirror.url("/disk.qcow2")


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.10", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "private"),
        ("100.100.100.200", "not-global"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ],
)
def test_non_public_address_values_are_refused(address, category):
    policy = FetchPolicy()
    assert guard.address_category(ipaddress.ip_address(address), policy) == category


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("2002:7f00:1::", "2002:7f00:1:: is the 6to4 form of 127.0.0.1, a loopback address"),
        ("::ffff:10.0.0.1", "::ffff:a00:1 is the IPv4-mapped form of 10.0.0.1, a private"),
        ("64:ff9b::a00:1", "64:ff9b::a00:1 is the NAT64 form of 10.0.0.1, a private"),
        ("::1", "::1 is a loopback address:"),
    ],
)
def test_an_ipv6_form_of_an_ipv4_address_is_named_as_such(address, expected):
    with pytest.raises(URLRefused) as refused:
        ip = ipaddress.ip_address(address)
        guard.check_address(ip, host=str(ip), policy=FetchPolicy())
    assert str(refused.value).startswith(expected)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"])
def test_public_address_values_pass(address):
    assert guard.address_category(ipaddress.ip_address(address), FetchPolicy()) == ""


def test_allowed_networks_open_only_what_they_name():
    policy = FetchPolicy(allowed_networks=(ipaddress.ip_network("10.1.0.0/16"),))
    assert guard.address_category(ipaddress.ip_address("10.1.2.3"), policy) == ""
    assert guard.address_category(ipaddress.ip_address("::ffff:10.1.2.3"), policy) == ""
    assert guard.address_category(ipaddress.ip_address("10.2.0.1"), policy) == "private"


def _fake_resolver(answers):
    calls = []

    def resolve(host, port, type=0):
        calls.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers
        ]

    resolve.calls = calls
    return resolve


@pytest.mark.parametrize(
    "answers",
    [["10.0.0.5"], ["169.254.169.254"], ["93.184.215.14", "192.168.0.7"], ["fd00::5"]],
)
def test_a_name_is_refused_when_any_of_its_addresses_is_refused(answers):
    resolver = _fake_resolver(answers)
    url, _password = urls.parse("https://mirror.example.org/disk.qcow2")

    with pytest.raises(URLRefused) as refused:
        guard.resolve(url, FetchPolicy(resolver=resolver))
    assert refused.value.rule == "address"
    assert "mirror.example.org" in str(refused.value)
    assert resolver.calls == ["mirror.example.org"]


def test_a_name_with_public_addresses_resolves_to_them():
    resolver = _fake_resolver(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    url, _password = urls.parse("https://mirror.example.org/disk.qcow2")

    assert [str(a) for a in guard.resolve(url, FetchPolicy(resolver=resolver))] == [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ]


def test_numeric_hosts_never_reach_dns():
    resolver = _fake_resolver(["93.184.215.14"])
    for host in ("2130706433", "127.1", "0x7f.0.0.1", "10.1"):
        url, _password = urls.parse(f"http://{host}/disk.qcow2")
        with pytest.raises(URLRefused):
            guard.resolve(url, FetchPolicy(resolver=resolver))
    assert resolver.calls == []


def test_validate_refuses_a_literal_internal_address_without_dns(settings):
    with pytest.raises(URLRefused) as refused:
        validate("http://169.254.169.254/latest/meta-data/iam")
    assert refused.value.category == "link-local"
    assert "IMPORT_ALLOWED_NETWORKS" not in str(refused.value) and "administrator" in str(refused.value)
    assert refused.value.setting == "IMPORT_ALLOWED_NETWORKS"


@pytest.mark.parametrize(
    "url",
    [
        "gopher://127.0.0.1:70/1",
        "dict://127.0.0.1:11211/stat",
        "ldap://x/y",
        "jar:http://x/y!/z",
        "javascript:alert(1)",
        "data:text/plain,x",
    ],
)
def test_other_schemes_are_refused(settings, url):
    with pytest.raises(URLRefused) as refused:
        validate(url)
    assert refused.value.rule == "scheme"


def test_a_scheme_can_be_turned_off(settings):
    settings.IMPORT_ALLOWED_SCHEMES = ["https"]
    with pytest.raises(URLRefused) as refused:
        validate("http://mirror.example.org/disk.qcow2")
    assert refused.value.rule == "scheme"
    assert validate("https://mirror.example.org/disk.qcow2").host == "mirror.example.org"
