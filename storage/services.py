"""Every state change of image storages: create, edit, reconnect, delete, data cleanup.

Admin, management commands and jobs call these; nothing else writes an ImageStorage. Storage knows
chunks, objects and keys, never images: which keys are referenced, and copying an image's replica to
another storage (sync, migrate), are the images app's (`images/services/storage_data.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.services import log

from . import hooks
from .backends import StorageError, get_backend
from .models import ImageStorage
from .selectors import forget_usage

DEFAULT_STORAGE_NAME = "local"

# Fields of "modify configuration", per kind ("edit name and description" has its own service).
CONFIGURATION_FIELDS = {
    ImageStorage.Kind.STANDALONE: ["mount_path"],
    ImageStorage.Kind.DISTRIBUTED: ["endpoint_url", "region", "bucket", "access_key", "capacity_bytes"],
    ImageStorage.Kind.SERVER: ["mount_path", "sync_network", "data_network"],
}
COMMON_CONFIGURATION_FIELDS = [
    "reserved_bytes",
    "upload_concurrency",
    "download_concurrency",
    "target_format",
]
# Where the bytes are: these cannot change while replicas are stored there, or the images would be lost.
LOCATION_FIELDS = {"mount_path", "endpoint_url", "region", "bucket"}


def _check_connection(storage: ImageStorage) -> str:
    """The reason the storage cannot be used, or "" when it can."""
    try:
        get_backend(storage).reconnect()
    except StorageError as error:
        return str(error)
    return ""


def _apply_connection_result(storage: ImageStorage, reason: str) -> None:
    storage.state = ImageStorage.State.DISCONNECTED if reason else ImageStorage.State.CONNECTED
    storage.state_reason = reason[:500]


@transaction.atomic
def storage_create(
    *,
    kind: str,
    name: str,
    description: str = "",
    data_center: str = "default",
    mount_path: str = "",
    endpoint_url: str = "",
    region: str = "",
    bucket: str = "",
    access_key: str = "",
    secret_key: str = "",
    host: str = "",
    ssh_port: int = 22,
    ssh_username: str = "root",
    password: str = "",
    addition_method: str = ImageStorage.AdditionMethod.LOCAL_DIRECTORY,
    disk: str = "",
    sync_network: str = "",
    data_network: str = "",
    reserved_bytes: int | None = None,
    upload_concurrency: int = 1,
    download_concurrency: int = 1,
    capacity_bytes: int | None = None,
    target_format: str = "",
    enabled: bool = True,
    login: ServerLogin | None = None,
    actor=None,
    request=None,
) -> ImageStorage:
    """Add a storage. A standalone storage's directory is created and must pass a write test; a
    distributed storage is saved whatever its connection test says, in state disconnected with the
    reason when it fails. A standalone (server) storage is added only when the console can log in with
    the password: it records the server's host key, installs a key of its own, and (addition method
    "free disk") formats `disk` and mounts it at the mount path; the directory must then pass a write
    test over SSH. With `login` (the admin's add wizard tested the login at its second step), the key and
    host key installed then are used and the password is not needed again."""
    storage = ImageStorage(
        kind=kind,
        name=name,
        description=description,
        data_center=data_center,
        mount_path=mount_path,
        endpoint_url=endpoint_url,
        region=region,
        bucket=bucket,
        access_key=access_key,
        host=host,
        ssh_port=ssh_port,
        ssh_username=ssh_username,
        addition_method=addition_method,
        sync_network=sync_network,
        data_network=data_network,
        upload_concurrency=upload_concurrency,
        download_concurrency=download_concurrency,
        target_format=target_format,
        enabled=enabled,
    )
    if reserved_bytes is not None:
        storage.reserved_bytes = reserved_bytes
    if capacity_bytes is not None:
        storage.capacity_bytes = capacity_bytes
    if kind == ImageStorage.Kind.DISTRIBUTED:
        if not secret_key:
            raise ValidationError({"secret_key": _("Enter the secret key.")}, code="required")
        storage.set_secret_key(secret_key)
    storage.full_clean()
    if kind == ImageStorage.Kind.SERVER:
        if login is not None:
            login.apply_to(storage)
        _enroll_server(storage, password=password, disk=disk, enrolled=login is not None)
    reason = _check_connection(storage)
    if reason and kind in (ImageStorage.Kind.STANDALONE, ImageStorage.Kind.SERVER):
        raise ValidationError({"mount_path": reason}, code="write_test")
    if kind == ImageStorage.Kind.SERVER and login is not None:
        _confirm_key(storage)
    _apply_connection_result(storage, reason)
    storage.save()
    log(action="storage.create", actor=actor, target=storage, request=request, message=storage.state_reason)
    return storage


def _confirm_key(storage: ImageStorage) -> None:
    """The add wizard's login installed the console's key for a day only: the storage is created, the key
    stays."""
    from .backends import server

    try:
        server.confirm_key(storage)
    except StorageError as error:
        raise ValidationError({"host": str(error)}, code="unreachable") from error


def _enroll_server(storage: ImageStorage, *, password: str, disk: str, enrolled: bool = False) -> None:
    from .backends import server

    if not enrolled:
        if not password:
            raise ValidationError({"password": _("Enter the password.")}, code="required")
        try:
            server.enroll(storage, password)
        except StorageError as error:
            raise ValidationError({"host": str(error)}, code="unreachable") from error
    if storage.addition_method == ImageStorage.AdditionMethod.FREE_DISK:
        if not disk:
            raise ValidationError({"disk": _("Choose the disk to format.")}, code="required")
        try:
            server.format_free_disk(storage, disk)
        except StorageError as error:
            raise ValidationError({"disk": str(error)}, code="free_disk") from error
        storage.disk = disk


# The add wizard of a storage server (admin): its second step logs in, its third lists the free disks and
# checks the mount path, over that login, before anything is saved.


@dataclass(frozen=True)
class ServerLogin:
    """A tested login to a storage server not added yet: its pinned host key and the console's key
    installed there, the private key and the password only encrypted (a session may keep this)."""

    host: str
    ssh_port: int
    ssh_username: str
    ssh_host_key: str
    ssh_public_key: str
    ssh_private_key_encrypted: str
    ssh_password_encrypted: str

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ServerLogin:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def same_server(self, *, host: str, ssh_port: int, ssh_username: str) -> bool:
        return (self.host, self.ssh_port, self.ssh_username) == (host, ssh_port, ssh_username)

    def apply_to(self, storage: ImageStorage) -> None:
        for name, value in self.as_dict().items():
            setattr(storage, name, value)

    def probe(self, *, name: str = "", mount_path: str = "") -> ImageStorage:
        """An unsaved storage with this login, to reach the server through the backend's functions."""
        storage = ImageStorage(kind=ImageStorage.Kind.SERVER, name=name, mount_path=mount_path)
        self.apply_to(storage)
        return storage


def storage_server_login(
    *,
    name: str,
    host: str,
    ssh_port: int,
    ssh_username: str,
    password: str = "",
    previous: ServerLogin | None = None,
) -> ServerLogin:
    """Test the login to a storage server about to be added: with the password, pin the host key and
    install the console's key (the key of `previous` when it is the same server, so going back and
    forth installs one key); without one, log in again with the key `previous` installed."""
    from .backends import server

    same = previous is not None and previous.same_server(
        host=host, ssh_port=ssh_port, ssh_username=ssh_username
    )
    storage = previous.probe(name=name) if same else ImageStorage(kind=ImageStorage.Kind.SERVER, name=name)
    storage.host, storage.ssh_port, storage.ssh_username = host, ssh_port, ssh_username
    try:
        if password:
            server.enroll(storage, password, provisional=True)
        elif same:
            server.open_transport(storage).close()
        else:
            raise ValidationError({"password": _("Enter the password.")}, code="required")
    except StorageError as error:
        raise ValidationError({"host": str(error)}, code="unreachable") from error
    return ServerLogin(
        host=host,
        ssh_port=ssh_port,
        ssh_username=ssh_username,
        ssh_host_key=storage.ssh_host_key,
        ssh_public_key=storage.ssh_public_key,
        ssh_private_key_encrypted=storage.ssh_private_key_encrypted,
        ssh_password_encrypted=storage.ssh_password_encrypted,
    )


def storage_server_free_disks(*, login: ServerLogin) -> list[dict]:
    """The server's disks with no partitions, file systems or mounts (`path`, `size`), or StorageError."""
    from .backends import server

    return server.list_free_disks(login.probe())


def storage_server_check_mount_path(*, login: ServerLogin, mount_path: str) -> None:
    """ValidationError on `mount_path` when it is, or resolves on the server into, a system directory."""
    from .backends import server

    storage = login.probe(mount_path=mount_path)
    backend = server.ServerBackend(storage)
    try:
        # A connection of its own, closed afterwards: nothing of a storage not added is kept open.
        backend._connection = server.Connection(storage, server.open_transport(storage))
        backend.check_remote_mount_path()
    except StorageError as error:
        raise ValidationError({"mount_path": str(error)}, code="mount_path") from error
    finally:
        if backend._connection is not None:
            backend._connection.close()


def storage_create_default() -> ImageStorage:
    """The standalone storage "local" at settings.STORAGE_ROOT, created once (`make run`'s demo)."""
    existing = ImageStorage.objects.filter(name=DEFAULT_STORAGE_NAME).first()
    if existing is not None:
        return existing
    return storage_create(
        kind=ImageStorage.Kind.STANDALONE,
        name=DEFAULT_STORAGE_NAME,
        description=_("Created by the demo set-up under STORAGE_ROOT."),
        mount_path=str(settings.STORAGE_ROOT),
    )


@transaction.atomic
def storage_update(
    *,
    storage: ImageStorage,
    name: str,
    description: str,
    data_center: str | None = None,
    enabled: bool | None = None,
    actor=None,
    request=None,
) -> ImageStorage:
    """Edit name and description (and the data center and the enabled flag)."""
    storage.name = name
    storage.description = description
    if data_center is not None:
        storage.data_center = data_center
    if enabled is not None:
        storage.enabled = enabled
    storage.full_clean()
    storage.save()
    log(action="storage.update", actor=actor, target=storage, request=request)
    return storage


@transaction.atomic
def storage_modify_configuration(
    *, storage: ImageStorage, actor=None, request=None, **changes
) -> ImageStorage:
    """Change where and how the storage keeps data; the connection is tested again."""
    allowed = set(CONFIGURATION_FIELDS[storage.kind]) | set(COMMON_CONFIGURATION_FIELDS)
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"not configuration fields of a {storage.kind} storage: {sorted(unknown)}")
    current = ImageStorage.objects.select_for_update().get(pk=storage.pk)
    moved = {field for field in LOCATION_FIELDS & set(changes) if changes[field] != getattr(current, field)}
    if moved and current.replicas.exists():
        raise ValidationError(
            {
                field: _("This storage holds images; their data would be left behind at the old location.")
                for field in moved
            },
            code="has_replicas",
        )
    for field, value in changes.items():
        setattr(storage, field, value)
    storage.full_clean()
    reason = _check_connection(storage)
    if reason and storage.kind in (ImageStorage.Kind.STANDALONE, ImageStorage.Kind.SERVER):
        raise ValidationError({"mount_path": reason}, code="write_test")
    _apply_connection_result(storage, reason)
    storage.save()
    log(
        action="storage.configure", actor=actor, target=storage, request=request, message=storage.state_reason
    )
    return storage


@transaction.atomic
def storage_update_password(
    *, storage: ImageStorage, secret_key: str, actor=None, request=None
) -> ImageStorage:
    """Store a new secret key. It takes effect with the next reconnect, as in the product's manual."""
    if storage.kind != ImageStorage.Kind.DISTRIBUTED:
        raise ValidationError(_("Only a distributed storage has a secret key."), code="not_distributed")
    if not secret_key:
        raise ValidationError({"secret_key": _("Enter the secret key.")}, code="required")
    storage.set_secret_key(secret_key)
    storage.save(update_fields=["secret_key_encrypted", "updated_at"])
    log(action="storage.update_password", actor=actor, target=storage, request=request)
    return storage


@transaction.atomic
def storage_update_server_password(
    *, storage: ImageStorage, password: str, actor=None, request=None
) -> ImageStorage:
    """Keep a new login password for a storage server (encrypted). Reconnect uses it when the server no
    longer accepts the console's key: it logs in with it and installs the key again."""
    if storage.kind != ImageStorage.Kind.SERVER:
        raise ValidationError(
            _("Only a standalone (server) storage has a login password."), code="not_server"
        )
    if not password:
        raise ValidationError({"password": _("Enter the password.")}, code="required")
    storage.set_ssh_password(password)
    storage.save(update_fields=["ssh_password_encrypted", "updated_at"])
    log(action="storage.update_password", actor=actor, target=storage, request=request)
    return storage


@transaction.atomic
def storage_reconnect(*, storage: ImageStorage, actor=None, request=None) -> ImageStorage:
    """Test the connection again and record the state and the reason (a storage server whose key was
    refused gets it installed again with the kept password)."""
    reason = _check_connection(storage)
    _apply_connection_result(storage, reason)
    fields = ["state", "state_reason", "updated_at"]
    if storage.kind == ImageStorage.Kind.SERVER:
        fields += ["ssh_private_key_encrypted", "ssh_public_key", "ssh_host_key"]
    storage.save(update_fields=fields)
    log(
        action="storage.reconnect",
        actor=actor,
        target=storage,
        request=request,
        result="failure" if reason else "success",
        message=reason,
    )
    return storage


def storage_delete_blockers(*, storage: ImageStorage) -> list[str]:
    """Names of what keeps the storage from being deleted (the images stored on it), as the apps above
    storage answer through `storage.hooks`."""
    return hooks.delete_blockers(storage=storage)


@transaction.atomic
def storage_delete(*, storage: ImageStorage, actor=None, request=None) -> None:
    """Delete a storage that holds no image. Its data directory or bucket is left as it is."""
    blockers = storage_delete_blockers(storage=storage)
    if blockers:
        shown = ", ".join(f"“{name}”" for name in blockers[:10])
        if len(blockers) > 10:
            shown += _(" and %(count)d more") % {"count": len(blockers) - 10}
        raise ValidationError(
            _("Storage “%(name)s” still holds images: %(images)s. Move or delete them first.")
            % {"name": storage.name, "images": shown},
            code="has_images",
        )
    log(action="storage.delete", actor=actor, target=storage, request=request)
    storage.delete()


# Data cleanup


@dataclass(frozen=True)
class CleanupReport:
    bytes_freed: int
    replicas_removed: int
    blobs_removed: int
    staging_files_removed: int

    def __str__(self):
        return _(
            "%(freed)s freed. Removed: unreferenced replicas %(replicas)d, chunks and leftovers %(blobs)d, "
            "expired staging files %(staging)d."
        ) % {
            "freed": filesizeformat(self.bytes_freed),
            "replicas": self.replicas_removed,
            "blobs": self.blobs_removed,
            "staging": self.staging_files_removed,
        }


def cleanup_grace_seconds() -> float:
    return float(getattr(settings, "STORAGE_CLEANUP_GRACE_HOURS", 6)) * 3600


def storage_cleanup(
    *,
    storage: ImageStorage,
    referenced_keys: set[str],
    staging_files_removed: int = 0,
    staging_bytes_freed: int = 0,
    actor=None,
    request=None,
) -> CleanupReport:
    """Data cleanup: remove the chunks or objects that none of `referenced_keys` uses, and record the
    bytes freed (with those of the staging files the caller removed) on the storage and in the log.

    Safe while imports run: what is younger than the grace period (STORAGE_CLEANUP_GRACE_HOURS) stays.
    The caller (images) knows which keys its replicas reference; storage knows only keys.
    """
    result = get_backend(storage).cleanup(
        referenced_keys=referenced_keys, grace_seconds=cleanup_grace_seconds()
    )
    report = CleanupReport(
        bytes_freed=result.bytes_freed + staging_bytes_freed,
        replicas_removed=result.replicas_removed,
        blobs_removed=result.blobs_removed,
        staging_files_removed=staging_files_removed,
    )
    ImageStorage.objects.filter(pk=storage.pk).update(
        last_cleanup_at=timezone.now(), last_cleanup_bytes=report.bytes_freed
    )
    forget_usage(storage=storage)
    log(action="storage.cleanup", actor=actor, target=storage, request=request, message=str(report))
    return report


def storage_convert_chunk_names(*, storage: ImageStorage, progress=None, actor=None, request=None):
    """Convert a standalone storage's chunk names from SHA256 to BLAKE3 (storage/backends/chunknames.py).

    New chunks get BLAKE3 names from the start, so the import pays a quarter of SHA256's CPU for them; every
    chunk a replica names by SHA256 gets its BLAKE3 name as a second name of the same file (no byte is
    copied) and the manifests are rewritten, so new chunks still meet the old ones and are stored once.
    Safe while imports run. A replica published anew while this ran is reported; run it again for it.
    """
    if not storage.uses_chunks:
        raise StorageError(
            _("Storage “%(name)s” keeps images as objects, not chunks: it has no chunk names to convert.")
            % {"name": storage.name}
        )
    if storage.chunk_names != ImageStorage.ChunkNames.BLAKE3:
        storage.chunk_names = ImageStorage.ChunkNames.BLAKE3
        ImageStorage.objects.filter(pk=storage.pk).update(chunk_names=storage.chunk_names)
    result = get_backend(storage).convert_chunk_names(progress=progress)
    log(
        action="storage.convert_chunk_names",
        actor=actor,
        target=storage,
        request=request,
        message=_("%(replicas)d replicas and %(chunks)d chunks renamed by BLAKE3")
        % {"replicas": result.replicas, "chunks": result.chunks},
    )
    return result
