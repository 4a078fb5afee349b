"""Our images in the Image API v2's shape: statuses, visibility and formats mapped onto Glance's."""

from images.models import Image

# Core attributes of a Glance image; anything else in a request is a free-form property.
CORE = frozenset(
    {
        "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
        "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk", "disk_format",
        "container_format", "created_at", "updated_at", "tags", "self", "file", "schema", "locations",
        "direct_url", "stores",
    }
)  # fmt: skip
READ_ONLY = frozenset(
    {"id", "status", "checksum", "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size",
     "created_at", "updated_at", "self", "file", "schema", "locations", "direct_url", "stores"}
)  # fmt: skip
DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
# The formats our import pipeline takes; the others are refused with a 400 that names these.
OUR_DISK_FORMATS = ("qcow2", "raw", "vmdk", "vhd", "vhdx", "iso")
OUR_CONTAINER_FORMATS = ("bare", "ova")

VISIBILITY = {
    Image.Sharing.PRIVATE: "private",
    Image.Sharing.TENANTS: "shared",
    Image.Sharing.GLOBAL: "public",
}
SHARING = {"private": Image.Sharing.PRIVATE, "shared": Image.Sharing.TENANTS, "public": Image.Sharing.GLOBAL}


def glance_time(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def glance_status(image: Image, *, staged: bool = False) -> str:
    """queued, saving, uploading (glance-direct bytes staged), importing, active, deactivated, killed,
    deleted: derived from our status and stage."""
    status, stage = image.status, image.stage
    if status == Image.Status.AVAILABLE:
        return "active" if image.enabled else "deactivated"
    if status == Image.Status.FAILED:
        return "killed"
    if status in (Image.Status.DELETING, Image.Status.DELETED):
        return "deleted"
    if status == Image.Status.CREATING:
        return "saving"
    fetched = image.source != Image.Source.UPLOAD
    if stage == Image.Stage.QUEUED:
        if fetched:
            return "importing"
        return "uploading" if staged else "queued"
    if stage == Image.Stage.DOWNLOADING:
        return "importing"
    if stage == Image.Stage.RECEIVING:
        return "saving"
    return "importing" if fetched or staged else "saving"


def container_format(image: Image) -> str:
    return "ova" if image.source_format == Image.DiskFormat.OVA else "bare"


def image_body(image: Image, *, tenant, staged: bool = False) -> dict:
    uploaded = image.status in (Image.Status.AVAILABLE, Image.Status.DELETED, Image.Status.DELETING)
    body = {
        "id": str(image.pk),
        "name": image.name,
        "status": glance_status(image, staged=staged),
        "visibility": VISIBILITY.get(image.sharing, "private"),
        "protected": image.protected,
        "os_hidden": False,
        "checksum": (image.md5 or None) if uploaded else None,
        "os_hash_algo": "sha256" if uploaded and image.sha256 else None,
        "os_hash_value": (image.sha256 or None) if uploaded else None,
        "owner": str(image.tenant_id),
        "size": image.size if uploaded else None,
        "virtual_size": image.virtual_size if uploaded else None,
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "disk_format": image.disk_format,
        "container_format": container_format(image),
        "created_at": glance_time(image.created_at),
        "updated_at": glance_time(image.updated_at),
        "tags": list(image.labels or []),
        "self": f"/v2/images/{image.pk}",
        "file": f"/v2/images/{image.pk}/file",
        "schema": "/v2/schemas/image",
    }
    if uploaded and image.storage_id:
        body["stores"] = str(image.storage_id)
    for key, value in (image.properties or {}).items():
        if key not in body:
            body[key] = value
    return body
