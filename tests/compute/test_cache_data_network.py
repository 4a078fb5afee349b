"""The image cache reads an image from a storage server over the storage's data network when it has one
(seed 003: "the network CIDR used for data communication between compute nodes and the image storage"),
and fails naming that network rather than falling back to the management network.

The storage server is sshd in a network namespace of the test run (tests/storage/servers.py) with two
links to the console: the control link it was added by and a data link, each counted on its own veth.
The compute host is this machine's libvirtd (`qemu:///system`).
"""

from pathlib import Path

import pytest

from compute.models import ImageCacheEntry, VirtualMachine
from compute.services import vms
from compute.services.cache import CacheError, cache_ensure
from storage.backends.server import connection_for
from tests.storage.conftest import MiB, random_bytes

# A cache upload's control traffic: finding the data address (one command) and nothing else.
CONTROL_BUDGET = 256 * 1024


@pytest.fixture
def data_server(make_storage_server):
    """A storage server of its own (its data link is taken down by a test) with a data network."""
    server = make_storage_server()
    server.add_data_network()
    return server


def traffic(server) -> tuple[int, int]:
    """(bytes on the control link, bytes the console received on the data link)."""
    return sum(server.counters()), server.data_counters()[0]


def test_the_image_cache_reads_the_image_over_the_data_network(
    compute_host, data_server, make_server_storage, make_image
):
    storage, _backend = make_server_storage(
        "data-net", server=data_server, data_network=data_server.data_network
    )
    data = random_bytes(12 * MiB, 90) + bytes(4 * MiB) + random_bytes(MiB + 7, 91)
    image = make_image(storage, data)
    control_before, data_before = traffic(data_server)

    entry = cache_ensure(host=compute_host, image=image)

    control_after, data_after = traffic(data_server)
    assert entry.state == ImageCacheEntry.State.READY
    assert Path(entry.path).read_bytes() == data
    # The image's stored bytes (not its 4 MiB hole) came over the data link; the control link carried
    # only the lookup of the data address.
    assert data_after - data_before > 13 * MiB
    assert control_after - control_before < CONTROL_BUDGET
    # Control and data are two connections of the process, each to its own address of the server.
    control = connection_for(storage)
    data_connection = connection_for(storage, address=data_server.data_address)
    assert control is not data_connection
    assert control.transport.getpeername()[0] == data_server.address
    assert data_connection.transport.getpeername()[0] == data_server.data_address


def test_an_unreachable_data_address_fails_the_vm_creation_naming_the_data_network(
    tenant,
    owner,
    compute_host,
    data_server,
    make_server_storage,
    make_image,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    storage, _backend = make_server_storage(
        "data-down", server=data_server, data_network=data_server.data_network
    )
    image = make_image(storage, random_bytes(8 * MiB, 92))
    data_server.set_data_link(up=False)
    try:
        control_before = sum(data_server.counters())

        with django_capture_on_commit_callbacks(execute=True):
            vm = vms.vm_create(
                tenant=tenant,
                image=image,
                name="data-1",
                vcpus=1,
                memory_mib=128,
                host=compute_host,
                actor=owner,
            )
        assert run_jobs() == 0

        vm.refresh_from_db()
        assert vm.state == VirtualMachine.State.ERROR
        assert data_server.data_network in vm.error and data_server.data_address in vm.error
        assert "management network" in vm.error
        entry = ImageCacheEntry.objects.get(host=compute_host, sha256=image.sha256)
        assert entry.state == ImageCacheEntry.State.FAILED and data_server.data_network in entry.error
        # Nothing was read over the management network instead.
        assert sum(data_server.counters()) - control_before < CONTROL_BUDGET
    finally:
        data_server.set_data_link(up=True)

    # With the data link back, the next creation's upload goes through.
    assert cache_ensure(host=compute_host, image=image).state == ImageCacheEntry.State.READY


def test_a_data_network_the_server_has_no_address_in_fails_the_upload_naming_it(
    compute_host, data_server, make_server_storage, make_image
):
    storage, _backend = make_server_storage("data-none", server=data_server, data_network="198.51.100.0/24")
    image = make_image(storage, random_bytes(MiB, 93))

    with pytest.raises(CacheError, match=r"198\.51\.100\.0/24"):
        cache_ensure(host=compute_host, image=image)

    assert ImageCacheEntry.objects.get(host=compute_host, sha256=image.sha256).state == (
        ImageCacheEntry.State.FAILED
    )
