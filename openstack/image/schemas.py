"""`GET /v2/schemas/...`: the JSON Schemas glanceclient downloads and validates requests against."""

from copy import deepcopy

from ..http import OpenStackView, json_response
from .serialize import CONTAINER_FORMATS, DISK_FORMATS

VALIDATION_DATA = {
    "description": "Values to be used to populate the corresponding image properties. If the image status is "
                   "not 'queued', values must exactly match those already contained in the image properties.",
    "type": "object", "writeOnly": True, "additionalProperties": False,
    "properties": {"checksum": {"type": "string", "minLength": 32, "maxLength": 32},
                   "os_hash_algo": {"type": "string", "maxLength": 64},
                   "os_hash_value": {"type": "string", "maxLength": 128}},
    "required": ["os_hash_algo", "os_hash_value"],
}  # fmt: skip

IMAGE_PROPERTIES = {
    "id": {"type": "string", "description": "An identifier for the image",
           "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
    "name": {"type": ["null", "string"], "description": "Descriptive name for the image", "maxLength": 255},
    "status": {"type": "string", "readOnly": True, "description": "Status of the image",
               "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
                        "pending_delete", "deactivated"]},
    "visibility": {"type": "string", "description": "Scope of image accessibility",
                   "enum": ["community", "public", "private", "shared"]},
    "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
    "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
    "checksum": {"type": ["null", "string"], "readOnly": True, "maxLength": 32,
                 "description": "md5 hash of image contents."},
    "os_hash_algo": {"type": ["null", "string"], "readOnly": True, "maxLength": 64,
                     "description": "Algorithm to calculate the os_hash_value"},
    "os_hash_value": {"type": ["null", "string"], "readOnly": True, "maxLength": 128,
                      "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"},
    "owner": {"type": ["null", "string"], "description": "Owner of the image", "maxLength": 255},
    "size": {"type": ["null", "integer"], "readOnly": True, "description": "Size of image file in bytes"},
    "virtual_size": {"type": ["null", "integer"], "readOnly": True, "description": "Virtual size of image in bytes"},
    "container_format": {"type": ["null", "string"], "description": "Format of the container",
                         "enum": [None, *CONTAINER_FORMATS]},
    "disk_format": {"type": ["null", "string"], "description": "Format of the disk", "enum": [None, *DISK_FORMATS]},
    "created_at": {"type": "string", "readOnly": True, "description": "Date and time of image registration"},
    "updated_at": {"type": "string", "readOnly": True, "description": "Date and time of the last image modification"},
    "tags": {"type": "array", "description": "List of strings related to the image",
             "items": {"type": "string", "maxLength": 255}},
    "direct_url": {"type": "string", "readOnly": True, "description": "URL to access the image file kept in external store"},
    "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
    "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
    "self": {"type": "string", "readOnly": True, "description": "An image self url"},
    "file": {"type": "string", "readOnly": True, "description": "An image file url"},
    "stores": {"type": "string", "readOnly": True, "description": "Store in which image data resides."},
    "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
    "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                  "items": {"type": "object", "required": ["url", "metadata"],
                            "properties": {"url": {"type": "string", "maxLength": 255},
                                           "metadata": {"type": "object"},
                                           "validation_data": VALIDATION_DATA}}},
}  # fmt: skip

IMAGE_SCHEMA = {
    "name": "image",
    "properties": IMAGE_PROPERTIES,
    "additionalProperties": {"type": "string"},
    "links": [
        {"rel": "self", "href": "{self}"},
        {"rel": "enclosure", "href": "{file}"},
        {"rel": "describedby", "href": "{schema}"},
    ],
}


def images_schema() -> dict:
    return {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": deepcopy(IMAGE_SCHEMA)},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


MEMBER_SCHEMA = {
    "name": "member",
    "properties": {
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "image_id": {"type": "string", "description": "An identifier for the image",
                     "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
        "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
        "schema": {"type": "string", "readOnly": True},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": ["pending", "accepted", "rejected"]},
        "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
    },
}  # fmt: skip


def members_schema() -> dict:
    return {
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": deepcopy(MEMBER_SCHEMA)},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }


SCHEMAS = {
    "image": lambda: IMAGE_SCHEMA,
    "images": images_schema,
    "member": lambda: MEMBER_SCHEMA,
    "members": members_schema,
}


class SchemaView(OpenStackView):
    name = "image"

    def get(self, request):
        return json_response(SCHEMAS[self.name]())
