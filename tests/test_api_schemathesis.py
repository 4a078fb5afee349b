"""Schemathesis generates requests from the OpenAPI schema at /api/v1/schema/ for every operation and
sends them, in process, to the WSGI application: none may end in a server error. Bounded: a few
examples per operation, no deadline."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from images.models import ExportedImage, Image, UploadSession
from storage.models import ImageStorage
from tenants import services
from tenants.models import Membership


@pytest.fixture
def api_objects(db, make_user):
    """A tenant with one object of each kind, so that generated requests also reach real rows."""
    tenant = services.tenant_create(name="schemathesis")
    user = make_user("fuzzer")
    services.membership_add(tenant=tenant, user=user, role=Membership.Role.OWNER)
    group = services.project_group_create(tenant=tenant, name="fuzz-group")
    images = {
        status: Image.objects.create(
            tenant=tenant, name=f"fuzz-{status}", disk_format="qcow2", status=status, project_group=group
        )
        for status in ("available", "failed", "uploading")
    }
    upload = UploadSession.objects.create(image=images["uploading"], length=4096)
    entry = services.log(action="image.update", tenant=tenant, target=images["available"])
    storage = ImageStorage.objects.create(name="fuzz-store", kind="standalone", mount_path="/tmp/fuzz-store")
    export = ExportedImage.objects.create(
        tenant=tenant,
        image=images["available"],
        storage=storage,
        format="vmdk",
        key="fuzz.vmdk",
        status="ready",
    )
    _token, key = services.api_token_create(user=user)
    return {
        "auth": {"Authorization": f"Token {key}"},
        "ids": [
            ("/images/{id}/file", images["uploading"].pk),
            ("/images/{id}/cancel", images["uploading"].pk),
            ("/images/{id}/", images["available"].pk),
            ("/project-groups/{id}/", group.pk),
            ("/operation-log/{id}/", entry.pk),
            ("/uploads/{id}", upload.pk),
            ("/images/{id}/download-links", images["available"].pk),
            ("/images/{id}/exports", images["available"].pk),
            ("/exports/{id}", export.pk),
            ("/exports/{id}/download-links", export.pk),
        ],
    }


@pytest.fixture
def api_auth(api_objects):
    return api_objects["auth"]


@pytest.fixture
def api_schema(api_auth):
    # As Django's test client does: the WSGI handler would otherwise close the test's database
    # connection after each request (PostgreSQL then loses the test transaction).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application(), headers=api_auth)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


# schemathesis' own pytest integration (LazySchema) does not run under pytest 9 yet; drive its
# strategies with Hypothesis directly, one operation after another, positive and negative cases.
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
# tus PATCH bodies are plain bytes.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


def _real_id(path: str, ids):
    for suffix, pk in ids:
        if path.endswith(suffix):
            return {"id": str(pk)}
    return None


def test_no_operation_answers_with_a_server_error(api_schema, api_objects, api_auth):
    failures = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        real = _real_id(operation.path, api_objects["ids"])
        # Generated ids mostly miss; the same operations also run against a row that exists.
        variants = [(mode, None) for mode in MODES] + ([(mode, real) for mode in MODES] if real else [])
        for mode, path_parameters in variants:

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
            @settings(
                max_examples=6,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case):
                response = case.call(headers=api_auth)
                case.validate_response(response, checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:
                continue  # nothing in this operation can be made invalid (no parameters, no body)
            except Exception as error:  # collect every operation's failure, then report them together
                failures.append(f"{operation.label} ({mode.value}): {type(error).__name__}: {error}"[:2000])
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
