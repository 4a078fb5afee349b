"""Standalone (server) storages: added by address and password in Django admin, the console's own key
installed, the host key pinned; a server that goes away; Update password and Reconnect; Free disk.

Every server is OpenSSH's sshd in a network namespace of the test run (tests/storage/servers.py). The
backend's chunk-store behaviour (round trips, holes, dedup, cleanup, reserve) runs over both kinds in
test_standalone.py, test_cleanup_standalone.py and test_capacity.py.
"""

import datetime
import hashlib
import io
import os
import subprocess
import threading
import time

import pytest

from storage.backends import StorageError, get_backend
from storage.models import ImageStorage
from storage.selectors import storage_choices_for_import

from .conftest import MiB, chunk_name, files_under, random_bytes, read_all
from .servers import ROOT_PASSWORD, USER, USER_PASSWORD, USER_UID

ADD_URL = "/admin/storage/imagestorage/add/?kind=server"
STEPS = {
    "basic": ["name", "description", "data_center"],
    "server": ["host", "ssh_port", "ssh_username", "password"],
    "disk": ["addition_method", "disk", "confirm_erase", "mount_path", "retrieve_existing"],
    "advanced": [
        "sync_network",
        "data_network",
        "reserved_bytes",
        "upload_concurrency",
        "download_concurrency",
        "target_format",
    ],
}


def step_url(step):
    return f"{ADD_URL}&step={step}"


def add_form(server, name, mount_path, **overrides):
    data = {
        "name": name,
        "description": "",
        "data_center": "default",
        "host": server.address,
        "ssh_port": server.port,
        "ssh_username": "root",
        "password": ROOT_PASSWORD,
        "addition_method": "local_directory",
        "mount_path": str(mount_path),
        "sync_network": "10.9.1.0/24",
        "data_network": "",
        "reserved_bytes": "0",
        "upload_concurrency": "4",
        "download_concurrency": "4",
        "target_format": "",
    }
    data.update(overrides)
    return data


def post_step(client, step, data, **extra):
    return client.post(step_url(step), {name: data[name] for name in STEPS[step] if name in data} | extra)


def add_through_steps(client, data):
    """Walk the add wizard from its start; the response of the last step posted (a page with errors, or
    the redirect after the storage was added)."""
    client.get(ADD_URL)
    for step in STEPS:
        if step == "disk":
            client.get(step_url(step))  # the server's free disks are listed when the step is shown
        response = post_step(client, step, data)
        if response.status_code != 302:
            return response
        assert ("step=" not in response.url) == (step == "advanced"), response.url
    return response


def field_errors(response, field) -> str:
    """The error list shown in the row of `field`."""
    import re

    match = re.search(
        rf'class="form-row errors field-{field}">\s*<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>',
        response.content.decode(),
        re.S,
    )
    return re.sub(r"<[^>]+>", " ", match.group(1)) if match else ""


def errors(response) -> str:
    import re

    return " ".join(re.findall(r"errorlist.*?</ul>|errornote.*?</p>", response.content.decode(), re.S))


def authorized_keys(home):
    path = home / ".ssh" / "authorized_keys"
    return path.read_text() if path.exists() else ""


def on_server(storage, command: str) -> str:
    from storage.backends.server import connection_for

    return connection_for(storage).check(command).decode()


def test_add_by_password_installs_a_key_then_stores_images_over_ssh(admin_client, storage_server, tmp_path):
    page = admin_client.get("/admin/storage/imagestorage/add/")
    assert b"?kind=server" in page.content
    data = add_form(storage_server, "srv-a", tmp_path / "images")
    pages = [admin_client.get(ADD_URL)]
    for step in STEPS:
        pages.append(admin_client.get(step_url(step)))
        response = post_step(admin_client, step, data)
        assert response.status_code == 302, errors(response)
        if step == "server":
            # Until the storage is created the key logs in for a day only: a wizard left here leaves no
            # lasting access behind.
            (line,) = [k for k in authorized_keys(storage_server.root_home).splitlines() if "srv-a" in k]
            until = datetime.datetime.strptime(line.split('"')[1], "%Y%m%d%H%M").replace(tzinfo=datetime.UTC)
            ahead = until - datetime.datetime.now(datetime.UTC)
            assert line.startswith('expiry-time="') and datetime.timedelta(
                hours=23
            ) < ahead <= datetime.timedelta(days=1)
    assert response.url.endswith("/change/")
    (line,) = [k for k in authorized_keys(storage_server.root_home).splitlines() if "srv-a" in k]
    assert line.startswith("ssh-ed25519 ")  # created: the key is permanent
    text = " ".join(page.content.decode() for page in pages)
    for label in ("Image storage IP", "SSH port", "Addition method", "Image sync network", "Data network"):
        assert label in text
    # The password was never sent back to a page; the wizard's session state is gone once added.
    assert ROOT_PASSWORD not in text
    assert "storage_server_add" not in admin_client.session

    storage = ImageStorage.objects.get(name="srv-a")
    assert storage.state == ImageStorage.State.CONNECTED
    assert storage.kind == ImageStorage.Kind.SERVER
    assert storage.ssh_public_key.startswith("ssh-ed25519 ")
    assert storage.ssh_public_key in authorized_keys(storage_server.root_home)
    # One key installed, however many steps logged in.
    assert authorized_keys(storage_server.root_home).count("imageconsole-storage-srv-a") == 1
    # The host key is pinned; the password and the private key are kept only encrypted.
    host_key = (storage_server.directory / "ssh_host_ed25519_key.pub").read_text().split()[1]
    assert storage.ssh_host_key.split()[1] == host_key
    assert ROOT_PASSWORD not in storage.ssh_password_encrypted
    assert "PRIVATE KEY" not in storage.ssh_private_key_encrypted
    assert storage.get_ssh_password() == ROOT_PASSWORD
    assert storage.sync_network == "10.9.1.0/24"
    # The chunk store is on the server (this machine's file system, seen through sshd).
    data = random_bytes(5 * MiB + 3, seed=50)
    backend = get_backend(storage)
    result = backend.ingest(io.BytesIO(data), key="img")
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(backend, "img") == data
    assert len(files_under(tmp_path / "images" / "chunks")) == 2
    # Usage is the server's file system (statvfs over SSH).
    stat = os.statvfs(tmp_path)
    usage = backend.usage()
    assert usage.total == stat.f_blocks * stat.f_frsize
    assert abs(usage.free - stat.f_bavail * stat.f_frsize) < 64 * MiB
    assert usage.logical == len(data)
    # The list shows where it is.
    listing = admin_client.get("/admin/storage/imagestorage/").content.decode()
    assert f"root@{storage_server.address}:22" in listing
    shown = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(storage_server.directory / "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    page = admin_client.get(f"/admin/storage/imagestorage/{storage.pk}/change/").content.decode()
    assert f"host key {shown}" in page and "image sync network 10.9.1.0/24" in page


def test_each_step_shows_its_errors_next_to_the_fields_and_back_keeps_the_values(
    admin_client, storage_server
):
    start = admin_client.get(ADD_URL).content.decode()
    assert "Step 1 of 4: Basic information" in start
    # A later step cannot be reached before the earlier ones are done.
    assert admin_client.get(step_url("disk")).url == step_url("basic")
    response = post_step(admin_client, "basic", {"name": "", "data_center": "default"})
    assert response.status_code == 200 and "This field is required" in field_errors(response, "name")
    response = post_step(admin_client, "basic", {"name": "srv-steps", "description": "first"})
    assert response.url == step_url("server")
    response = post_step(admin_client, "server", {"host": "10.0.0", "ssh_port": "0", "ssh_username": "root"})
    assert "Enter a valid IPv4 or IPv6 address" in field_errors(response, "host")
    assert "greater than or equal to 1" in field_errors(response, "ssh_port")

    # Back from step 2 keeps what was typed there (not the password) and shows step 1 as it was.
    typed = {"host": "10.0.0.9", "ssh_port": "2222", "ssh_username": "keeper", "password": "typed-secret"}
    response = post_step(admin_client, "server", typed, wizard_back="Back")
    assert response.url == step_url("basic")
    page = admin_client.get(response.url).content.decode()
    assert 'value="srv-steps"' in page and 'value="first"' in page
    assert post_step(admin_client, "basic", {"name": "srv-steps", "description": "first"}).url == step_url(
        "server"
    )
    page = admin_client.get(step_url("server")).content.decode()
    assert 'value="10.0.0.9"' in page and 'value="2222"' in page and 'value="keeper"' in page
    assert "typed-secret" not in page and "typed-secret" not in str(dict(admin_client.session))


def test_the_connection_test_keeps_step_2_until_the_server_lets_the_console_in(
    admin_client, storage_server, tmp_path
):
    data = add_form(storage_server, "srv-bad", tmp_path / "x", password="wrong")
    response = add_through_steps(admin_client, data)
    assert response.status_code == 200 and "Step 2 of 4" in response.content.decode()
    assert "refused the user name or password" in field_errors(response, "host")
    assert admin_client.get(step_url("disk")).url == step_url("server")
    refused = post_step(
        admin_client, "server", {**data, "host": storage_server.host_address, "ssh_port": "2"}
    )
    assert "Step 2 of 4" in refused.content.decode()
    assert "Cannot reach the storage server" in field_errors(refused, "host")
    assert "Connection refused" in field_errors(refused, "host")
    no_password = post_step(admin_client, "server", {**data, "password": ""})
    assert "Enter the password" in field_errors(no_password, "password")
    assert not authorized_keys(storage_server.root_home).count("srv-bad")

    # Logged in: step 3 says so. The disk step checks the system-directory rules, here and on the server.
    assert post_step(admin_client, "server", {**data, "password": ROOT_PASSWORD}).url == step_url("disk")
    page = admin_client.get(step_url("disk")).content.decode()
    assert f"Connected to root@{storage_server.address}:22" in page
    response = post_step(admin_client, "disk", {**data, "mount_path": "/proc/images"})
    assert "system directory /proc" in field_errors(response, "mount_path")
    link = tmp_path / "to-sys"
    link.symlink_to("/sys")
    response = post_step(admin_client, "disk", {**data, "mount_path": str(link / "images")})
    assert "inside the system directory /sys on the server" in field_errors(response, "mount_path")
    response = post_step(admin_client, "disk", {**data, "mount_path": "relative"})
    assert field_errors(response, "mount_path")
    # Going back to step 2 and on again without the password logs in with the key installed.
    assert post_step(admin_client, "disk", data, wizard_back="Back").url == step_url("server")
    # Another server that refuses closes the later steps again, until step 2 is valid once more.
    post_step(admin_client, "server", {**data, "host": storage_server.host_address, "ssh_port": "2"})
    assert admin_client.get(step_url("disk")).url == step_url("server")
    assert post_step(admin_client, "server", {**data, "password": ""}).url == step_url("disk")
    assert post_step(admin_client, "disk", data).url == step_url("advanced")
    assert 'name="reserved_bytes" value="1.00"' in admin_client.get(step_url("advanced")).content.decode()
    response = post_step(admin_client, "advanced", {**data, "data_network": "10.0.0"})
    assert "CIDR" in field_errors(response, "data_network")
    assert not ImageStorage.objects.exists()
    response = post_step(admin_client, "advanced", data)
    assert response.url.endswith("/change/"), errors(response)
    assert ImageStorage.objects.get().name == "srv-bad"


def test_a_server_gone_before_the_last_step_shows_the_reason_on_the_step_it_concerns(
    admin_client, make_storage_server, tmp_path
):
    server = make_storage_server()
    data = add_form(server, "srv-gone", tmp_path / "images")
    admin_client.get(ADD_URL)
    for step in ("basic", "server", "disk"):
        assert post_step(admin_client, step, data).status_code == 302
    server.kill()
    try:
        response = post_step(admin_client, "advanced", data)
        assert response.status_code == 200 and "Step 3 of 4" in response.content.decode()
        assert "Cannot reach the storage server" in field_errors(response, "mount_path")
        assert not ImageStorage.objects.exists()
    finally:
        server.start()
    assert post_step(admin_client, "disk", data).url == step_url("advanced")
    assert post_step(admin_client, "advanced", data).url.endswith("/change/")


def test_a_non_root_user_with_its_own_directory_works(admin_client, storage_server):
    mount = storage_server.user_home / "images"
    mount.mkdir(exist_ok=True)
    os.chown(mount, USER_UID, USER_UID)

    data = add_form(storage_server, "srv-user", mount, ssh_username=USER, password=USER_PASSWORD)
    response = add_through_steps(admin_client, {**data, "retrieve_existing": "on"})

    assert response.status_code == 302, errors(response)
    storage = ImageStorage.objects.get(name="srv-user")
    # Retrieve existing images (step 3) goes on to that page of the new storage.
    assert response.url == f"/admin/storage/imagestorage/{storage.pk}/retrieve/"
    assert storage.ssh_public_key in authorized_keys(storage_server.user_home)
    backend = get_backend(storage)
    data = random_bytes(2 * MiB, seed=51)
    backend.ingest(io.BytesIO(data), key="img")
    assert read_all(backend, "img") == data
    assert {os.stat(path).st_uid for path in files_under(mount / "chunks")} == {USER_UID}


def test_a_server_killed_mid_import_fails_it_with_the_reason_and_keeps_nothing_half_written(
    make_storage_server, make_server_storage
):
    server = make_storage_server()
    storage, backend = make_server_storage(server=server, concurrency=2)
    root = backend.root
    blocks_sent = []

    def blocks():
        for index in range(16):
            if index == 6:
                server.kill()
            blocks_sent.append(index)
            yield random_bytes(MiB, seed=100 + index)

    with pytest.raises(StorageError, match="went away|Cannot reach"):
        backend.ingest_stream(blocks(), key="broken")

    # Nothing half written: no manifest, and every chunk under its final name is whole.
    assert not (root / "manifests" / "broken.json").exists()
    for path in files_under(root / "chunks"):
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == os.path.basename(path)
    # Reconnect records it; an unreachable storage is not offered for imports.
    from storage import services

    services.storage_reconnect(storage=storage)
    assert storage.state == ImageStorage.State.DISCONNECTED
    assert "Cannot reach" in storage.state_reason or "went away" in storage.state_reason
    assert storage not in storage_choices_for_import()
    # Back again: connected, and deleting the failed replica removes what its writer left.
    server.start()
    services.storage_reconnect(storage=storage)
    assert storage.state == ImageStorage.State.CONNECTED, storage.state_reason
    assert storage in storage_choices_for_import()
    get_backend(storage).delete("broken")
    assert files_under(root / "chunks") == []


def test_update_password_then_reconnect_installs_the_key_again(admin_client, make_storage_server, tmp_path):
    server = make_storage_server()
    response = add_through_steps(admin_client, add_form(server, "srv-pw", tmp_path / "images"))
    assert response.status_code == 302, errors(response)
    storage = ImageStorage.objects.get(name="srv-pw")
    change = f"/admin/storage/imagestorage/{storage.pk}/change/"
    assert b"Update password" in admin_client.get(change).content
    # The server's administrator changes the password and removes the console's key.
    server.set_password("root", "new-root-secret")
    (server.root_home / ".ssh" / "authorized_keys").write_text("")
    from storage.backends.server import forget_connections

    forget_connections()

    admin_client.post(f"/admin/storage/imagestorage/{storage.pk}/reconnect/")
    storage.refresh_from_db()
    assert storage.state == ImageStorage.State.DISCONNECTED
    assert "refused the console's key" in storage.state_reason

    response = admin_client.post(
        f"/admin/storage/imagestorage/{storage.pk}/password/",
        {"password": "new-root-secret", "confirm": "new-root-secret"},
    )
    assert response.status_code == 302
    admin_client.post(f"/admin/storage/imagestorage/{storage.pk}/reconnect/")
    storage.refresh_from_db()
    assert storage.state == ImageStorage.State.CONNECTED, storage.state_reason
    assert storage.ssh_public_key in authorized_keys(server.root_home)
    assert storage.get_ssh_password() == "new-root-secret"


def test_a_changed_host_key_is_refused(make_server_storage, storage_server):
    storage, _backend = make_server_storage()
    storage.ssh_host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOtherKeyOtherKey0"
    storage.save()
    with pytest.raises(StorageError, match="different host key"):
        get_backend(storage).test_connection()


def test_free_disk_is_formatted_and_mounted_after_a_confirmation(admin_client, make_storage_server, tmp_path):
    server = make_storage_server()
    disk = server.add_loop_disk(64 * MiB)
    mount = tmp_path / "disk-images"
    form = add_form(server, "srv-disk", mount, addition_method="free_disk")
    admin_client.get(ADD_URL)
    assert post_step(admin_client, "basic", form).url == step_url("server")
    assert post_step(admin_client, "server", form).url == step_url("disk")

    # Step 3 lists the server's free disks over the login of step 2, with the warning.
    listed = admin_client.get(step_url("disk")).content.decode()
    assert f'<option value="{disk}">' in listed
    assert "completely clearing all partitions, file systems and data" in listed
    response = post_step(admin_client, "disk", form)
    assert "Choose the disk to format" in field_errors(response, "disk")
    response = post_step(admin_client, "disk", {**form, "disk": "/dev/not-listed"})
    assert "Select a valid choice" in field_errors(response, "disk")
    response = post_step(admin_client, "disk", {**form, "disk": disk})
    assert f"Confirm that all data on {disk} is erased" in field_errors(response, "confirm_erase")
    assert post_step(admin_client, "disk", {**form, "disk": disk, "confirm_erase": "on"}).url == step_url(
        "advanced"
    )
    review = admin_client.get(step_url("advanced")).content.decode()
    assert f"{disk}, formatted and mounted at {mount}" in review
    # Back to step 3: the disk chosen is kept, the confirmation is asked again.
    assert post_step(admin_client, "advanced", form, wizard_back="Back").url == step_url("disk")
    page = admin_client.get(step_url("disk")).content.decode()
    assert f'<option value="{disk}" selected>' in page
    assert 'name="confirm_erase" id="id_confirm_erase" checked' not in page
    assert not ImageStorage.objects.exists()
    post_step(admin_client, "disk", {**form, "disk": disk, "confirm_erase": "on"})

    response = post_step(admin_client, "advanced", form)

    assert response.status_code == 302, errors(response)
    storage = ImageStorage.objects.get(name="srv-disk")
    assert storage.disk == disk and storage.state == ImageStorage.State.CONNECTED
    source = on_server(storage, f"findmnt -n -o SOURCE,FSTYPE {mount}").split()
    assert source[0].startswith(disk) and source[1] == "ext4"
    uuid = on_server(storage, f"blkid -s UUID -o value {source[0]}").strip()
    assert f"UUID={uuid} {mount} ext4" in (server.directory / "fstab").read_text()
    backend = get_backend(storage)
    assert backend.usage().total < 64 * MiB
    data = random_bytes(3 * MiB, seed=52)
    backend.ingest(io.BytesIO(data), key="img")
    assert read_all(backend, "img") == data
    # The mount is the server's own (its mount namespace): this machine's directory stays empty.
    assert files_under(mount) == []
    # Formatted now, it is no longer offered.
    from storage.backends.server import list_free_disks

    assert disk not in {entry["path"] for entry in list_free_disks(storage)}


def test_concurrent_readers_use_several_channels_of_one_connection(make_server_storage):
    storage, backend = make_server_storage(concurrency=4)
    data = random_bytes(16 * MiB, seed=53)
    backend.ingest(io.BytesIO(data), key="img")
    results = []
    threads = [threading.Thread(target=lambda: results.append(read_all(backend, "img"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [data] * 3
    from storage.backends.server import connection_for

    connection = connection_for(storage)
    sessions = on_server(storage, "ps -o args= -C sshd | grep -c 'sshd: root' || true")
    assert int(sessions.strip() or 0) >= 1
    assert len(connection._idle) >= 2  # several SFTP channels opened on the one connection, kept


def test_a_quick_command_keeps_the_connection_when_this_end_is_slow_to_send(make_server_storage, monkeypatch):
    """A command that ends at once (`command -v python3` before every first write) must not cost the
    connection: CI once lost one, and with it the SFTP session of a chunk being written. paramiko sends
    a channel's EOF after letting go of the channel's lock; a thread that the CPU left there lets the
    CLOSE paramiko answers the ended command with go first, and OpenSSH drops the whole connection for
    an EOF on a channel it has freed. Here every EOF waits 0.3 s before it goes, as such a thread would."""
    import paramiko
    from paramiko.common import cMSG_CHANNEL_EOF

    from storage.backends.server import connection_for

    storage, backend = make_server_storage()
    connection = connection_for(storage)
    send = paramiko.Transport._send_user_message

    def late_eof(transport, message):
        if message.asbytes()[:1] == cMSG_CHANNEL_EOF and threading.current_thread() is not transport:
            time.sleep(0.3)
        return send(transport, message)

    monkeypatch.setattr(paramiko.Transport, "_send_user_message", late_eof)
    for _ in range(3):
        assert connection.run("echo quick")[:2] == (0, b"quick\n")
    assert connection.alive
    data = random_bytes(MiB, 81)
    backend.ingest(io.BytesIO(data), key="img")
    assert read_all(backend, "img") == data
    assert connection_for(storage) is connection  # the same connection, never dropped and made again
    # A command given input still reads it, to its end.
    assert connection.run("wc -c", stdin=b"12345")[:2] == (0, b"5\n")


def test_lsblk_parsing_keeps_only_disks_with_nothing_on_them():
    from storage.backends.server import _free_disks_from_lsblk

    text = """{"blockdevices": [
      {"name": "sda", "path": "/dev/sda", "size": 100, "type": "disk", "fstype": null, "pttype": "gpt",
       "mountpoints": [null], "ro": false, "children": [{"name": "sda1"}]},
      {"name": "sdb", "path": "/dev/sdb", "size": 200, "type": "disk", "fstype": null, "pttype": null,
       "mountpoints": [null], "ro": false},
      {"name": "sdc", "path": "/dev/sdc", "size": 300, "type": "disk", "fstype": "ext4", "pttype": null,
       "mountpoints": ["/srv"], "ro": false},
      {"name": "sr0", "path": "/dev/sr0", "size": 400, "type": "rom", "fstype": null, "pttype": null,
       "mountpoints": [null], "ro": true}
    ]}"""
    assert _free_disks_from_lsblk(text) == [{"path": "/dev/sdb", "size": 200}]


def test_prerequisites_name_the_packages_of_the_storage_servers():
    text = open("scripts/prerequisites.sh").read()
    assert '"openssh-server sbin:sshd"' in text and '"iproute2 sbin:ip"' in text
    assert subprocess.run(["bash", "-n", "scripts/prerequisites.sh"]).returncode == 0


def test_images_sync_from_a_local_storage_to_a_server_storage_moving_only_missing_chunks(
    make_standalone, make_server_storage, make_image, run_jobs, django_capture_on_commit_callbacks
):
    from images.services import storage_data
    from images.services.storage_data import CopyMode

    source, _source_backend = make_standalone("local-source")
    target, target_backend = make_server_storage("server-target")
    base = random_bytes(12 * MiB, 60)
    first = make_image(source, base + random_bytes(4 * MiB, 61))
    second_data = base + random_bytes(4 * MiB, 62)
    second = make_image(source, second_data)
    for image in (first, second):
        with django_capture_on_commit_callbacks(execute=True):
            replica = storage_data.replica_copy_start(
                image=image, source=source, target=target, mode=CopyMode.SYNC
            )
        before = target_backend.usage().used
        assert run_jobs() == 0
        replica.refresh_from_db()
        assert replica.state == "ready", replica.error
    # The second image shared 12 MiB with the first: only its own 4 MiB went to the server.
    assert 4 * MiB <= target_backend.usage().used - before < 5 * MiB
    assert read_all(target_backend, replica.key) == second_data


def test_sync_between_two_servers_goes_over_the_sync_network_with_a_key_removed_afterwards(
    make_storage_server, make_server_storage
):
    source_server, target_server = make_storage_server(), make_storage_server()
    network = source_server.link(target_server)
    source, source_backend = make_server_storage("sync-source", server=source_server)
    target, target_backend = make_server_storage("sync-target", server=target_server, sync_network=network)
    base = random_bytes(8 * MiB, 70)
    first = base + bytes(4 * MiB) + random_bytes(MiB, 71)
    second = base + random_bytes(4 * MiB, 72)
    source_backend.ingest(io.BytesIO(first), key="first")
    source_backend.ingest(io.BytesIO(second), key="second")
    keys_before = authorized_keys(source_server.root_home)
    sync_before = source_server.sync_counters()
    console_before = sum(source_server.counters()) + sum(target_server.counters())
    seen = []

    result = source_backend.copy_to("first", target_backend, progress=seen.append)

    sent_over_sync = source_server.sync_counters()[1] - sync_before[1]
    console_traffic = sum(source_server.counters()) + sum(target_server.counters()) - console_before
    assert result.bytes_stored == 9 * MiB and seen[-1] == len(first)
    assert read_all(target_backend, "first") == first
    # The chunks went from server to server; the console's links carried only control traffic.
    assert sent_over_sync > 9 * MiB
    assert console_traffic < MiB
    # The temporary key is gone from the source, its files from the target.
    assert authorized_keys(source_server.root_home) == keys_before
    assert files_under(target_backend.tmp_dir) == []
    # The second image shares 8 MiB with the first: only its own 4 MiB cross.
    result = source_backend.copy_to("second", target_backend)
    assert result.bytes_stored == 4 * MiB
    assert read_all(target_backend, "second") == second


def test_the_sync_key_can_only_read_chunks_by_name(make_server_storage, storage_server):
    import paramiko

    from storage.backends.server import (
        _READ_CHUNKS,
        _load_key,
        _q,
        connection_for,
        generate_key,
        install_key,
    )

    storage, backend = make_server_storage()
    data = random_bytes(MiB, 80)
    backend.ingest(io.BytesIO(data), key="img")
    digest = chunk_name(data)
    private, public = generate_key("imageconsole-sync-test")
    command = _READ_CHUNKS.format(chunks=_q(backend.chunks_dir))
    install_key(connection_for(storage).transport, f'restrict,command="{command}" {public}')

    def ask(command, stdin):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            storage_server.address,
            username="root",
            pkey=_load_key(private),
            look_for_keys=False,
            allow_agent=False,
        )
        try:
            channel = client.get_transport().open_session()
            channel.exec_command(command)
            channel.sendall(stdin)
            channel.shutdown_write()
            out = b""
            while chunk := channel.recv(1 << 20):
                out += chunk
            return channel.recv_exit_status(), out
        finally:
            client.close()

    status, out = ask("cat /etc/passwd", f"{digest}\n".encode())
    assert status == 0 and out == f"{MiB} {digest}\n".encode() + data  # the forced command ran instead
    status, out = ask("sh", b"../../../../etc/passwd\n")
    assert status == 2 and b"root:" not in out
    status, out = ask("sh", b"0" * 64 + b"\n")
    assert status == 3 and out == b""
    status, out = ask("sh", b"0" * 64 + b".b3/../../x\n")
    assert status == 2 and out == b""


def test_modify_configuration_of_a_server_storage(admin_client, make_server_storage):
    storage, _backend = make_server_storage()
    url = f"/admin/storage/imagestorage/{storage.pk}/configure/"
    page = admin_client.get(url).content.decode()
    assert "Image sync network" in page and "Data network" in page
    response = admin_client.post(
        url,
        {
            "mount_path": storage.mount_path,
            "sync_network": "10.20.0.7/16",
            "data_network": "fd00::/64",
            "reserved_bytes": "0",
            "upload_concurrency": "2",
            "download_concurrency": "3",
            "target_format": "",
        },
    )
    assert response.status_code == 302, errors(response)
    storage.refresh_from_db()
    assert (storage.sync_network, storage.data_network) == ("10.20.0.0/16", "fd00::/64")
    assert storage.state == ImageStorage.State.CONNECTED
    response = admin_client.post(
        url,
        {
            "mount_path": "/sys/x",
            "reserved_bytes": "0",
            "upload_concurrency": "1",
            "download_concurrency": "1",
        },
    )
    assert "system directory /sys" in response.content.decode()


def test_the_data_address_is_the_servers_address_in_the_data_network(make_server_storage, storage_server):
    storage, backend = make_server_storage()
    assert backend.data_address() == storage_server.address
    assert backend.data_reader() is backend  # no data network: reads go over the control connection
    storage.data_network = f"{storage_server.address}/30"
    assert get_backend(storage).data_address() == storage_server.address
    storage.data_network = "192.0.2.0/24"
    with pytest.raises(StorageError, match="no address in the network 192.0.2.0/24"):
        get_backend(storage).data_address()


def test_addstorage_adds_a_storage_server_with_the_password_from_the_environment(
    db, storage_server, tmp_path, monkeypatch
):
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    monkeypatch.setenv("STORAGE_SSH_PASSWORD", ROOT_PASSWORD)
    call_command(
        "addstorage",
        "--kind=server",
        "--name=cli-server",
        f"--host={storage_server.address}",
        f"--path={tmp_path / 'cli'}",
        "--sync-network=10.30.0.0/24",
        stdout=out,
    )
    assert "connected" in out.getvalue()
    storage = ImageStorage.objects.get(name="cli-server")
    assert storage.ssh_public_key in authorized_keys(storage_server.root_home)
    monkeypatch.setenv("STORAGE_SSH_PASSWORD", "wrong")
    with pytest.raises(CommandError, match="refused the user name or password"):
        call_command(
            "addstorage",
            "--kind=server",
            "--name=cli-2",
            f"--host={storage_server.address}",
            f"--path={tmp_path}",
        )
