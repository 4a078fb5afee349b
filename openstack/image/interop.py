"""Interoperable import: `GET /v2/info/import`, `GET /v2/info/stores`, `PUT /v2/images/{id}/stage`,
`POST /v2/images/{id}/import` (glance-direct, web-download), `GET /v2/images/{id}/tasks`."""

import django_rq
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from imageconsole.core.words import os_reason
from images.models import Image
from images.services.imports import ImportNotAccepted, import_from_url
from storage.selectors import storage_choices_for_import

from ..http import ApiError, OpenStackView, json_response, read_json
from .access import own_image, visible_image
from .file import accepts_bytes, import_error
from .serialize import glance_time
from .staging import is_staged, stage_limit, staged_path
from .stores import STORE_HEADER, store_chosen

METHODS = ["glance-direct", "web-download"]
BLOCK = 4 * 1024 * 1024


class ImportInfoView(OpenStackView):
    def get(self, request):
        return json_response(
            {
                "import-methods": {
                    "description": "Import methods available.",
                    "type": "array",
                    "value": METHODS,
                }
            }
        )


class StoresInfoView(OpenStackView):
    def get(self, request):
        storages = list(storage_choices_for_import(tenant=request.tenant))
        return json_response(
            {
                "stores": [
                    {
                        "id": str(storage.pk),
                        "description": storage.name,
                        **({"default": "true"} if index == 0 else {}),
                    }
                    for index, storage in enumerate(storages)
                ]
            }
        )


class StageView(OpenStackView):
    """glance-direct's first step: the bytes wait in the image's staging directory for `import`."""

    def put(self, request, image_id):
        image = own_image(request, image_id)
        if not accepts_bytes(image) or image.stage != Image.Stage.QUEUED or is_staged(image):
            raise ApiError(409, _("Image data can be staged once, while the image is queued."))
        path = staged_path(image.pk)
        path.parent.mkdir(parents=True, exist_ok=True)
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        read = (
            request.META["wsgi.input"].read
            if chunked or not request.META.get("CONTENT_LENGTH")
            else request.read
        )
        limit = stage_limit(image)
        too_large = ApiError(
            413,
            _("The file is larger than the %(limit)s the tenant's quota and the storage's free space allow.")
            % {"limit": filesizeformat(limit)},
        )
        length = request.META.get("CONTENT_LENGTH") or ""
        if not chunked and length.isdigit() and int(length) > limit:
            raise too_large
        partial = path.with_suffix(".partial")
        staged = False
        try:
            with partial.open("wb") as out:
                written = 0
                while data := read(BLOCK):
                    written += len(data)
                    if written > limit:
                        raise too_large
                    out.write(data)
            partial.rename(path)
            staged = True
        except OSError as error:
            raise ApiError(
                500, _("Could not stage the data: %(error)s") % {"error": os_reason(error)}
            ) from error
        finally:
            if not staged:
                partial.unlink(missing_ok=True)
        return HttpResponse(status=204)


class ImportView(OpenStackView):
    def post(self, request, image_id):
        image = own_image(request, image_id)
        body = read_json(request)
        method = (body or {}).get("method") if isinstance(body, dict) else None
        name = method.get("name") if isinstance(method, dict) else None
        if name not in METHODS:
            raise ApiError(400, _("Import method %(name)s is not supported; use one of: %(methods)s.")
                           % {"name": name, "methods": ", ".join(METHODS)})  # fmt: skip
        stores = body.get("stores") or []
        if not isinstance(stores, list) or len(stores) > 1:
            raise ApiError(400, _("Give one store of GET /v2/info/stores."))
        wanted = request.headers.get(STORE_HEADER, "") or (str(stores[0]) if stores else "")
        image = store_chosen(request, image, wanted)
        if name == "glance-direct":
            if not is_staged(image):
                raise ApiError(
                    409, _("Stage the image's data first (PUT /v2/images/%(id)s/stage).") % {"id": image.pk}
                )
            django_rq.get_queue("imports").enqueue(
                "openstack.jobs.glance_direct_import_job", image_id=str(image.pk), job_timeout=12 * 3600
            )
            return HttpResponse(status=202)
        uri = method.get("uri")
        if not isinstance(uri, str) or not uri:
            raise ApiError(400, _("web-download needs method.uri."))
        if not accepts_bytes(image) or image.stage != Image.Stage.QUEUED or is_staged(image):
            raise ApiError(409, _("Only a queued image that received no data can be imported."))
        try:
            import_from_url(image=image, url=uri, actor=request.user, request=request)
        except (ImportNotAccepted, ValidationError) as error:
            raise import_error(error) from error
        return HttpResponse(status=202)


class TasksView(OpenStackView):
    """The image's import as one task (our import is one job, not Glance's task flow)."""

    def get(self, request, image_id):
        image = visible_image(request, image_id)
        if image.tenant_id != request.tenant.pk:
            return json_response({"tasks": []})
        session = getattr(image, "upload", None)
        if session is None or image.source not in (Image.Source.URL, Image.Source.UPLOAD):
            return json_response({"tasks": []})
        status = {
            Image.Status.UPLOADING: "processing",
            Image.Status.AVAILABLE: "success",
            Image.Status.FAILED: "failure",
        }.get(image.status, "success")
        method = "web-download" if image.source == Image.Source.URL else "glance-direct"
        task = {
            "id": str(session.pk),
            "type": "api_image_import",
            "status": status,
            "owner": str(image.tenant_id),
            "input": {
                "image_id": str(image.pk),
                "import_req": {"method": {"name": method}},
                "backend": [str(image.storage_id)] if image.storage_id else [],
            },
            "result": {"image_id": str(image.pk)} if status == "success" else None,
            "message": image.error_text if status == "failure" else "",
            "image_id": str(image.pk),
            "request_id": "",
            "user_id": str(image.owner_id or ""),
            "created_at": glance_time(session.created_at),
            "updated_at": glance_time(session.updated_at),
            "expires_at": None,
            "deleted": False,
            "deleted_at": None,
        }
        return json_response({"tasks": [task]})
