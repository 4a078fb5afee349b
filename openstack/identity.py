"""A small OpenStack Identity v3: password login for console users (project = tenant), token
validation and revocation, and a catalog naming only the image service. Enough for keystoneauth
(openstackclient, openstacksdk, Ansible) to log in; nothing else of Keystone is served."""

from http import HTTPStatus

from django.contrib.auth import authenticate
from django.http import HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from .http import ApiError, OpenStackView, json_response, read_json
from .selectors import identity_token_valid, project_for_login
from .services import identity_token_issue, identity_token_revoke

DOMAIN = {"id": "default", "name": "Default"}
REGION = "RegionOne"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
UPDATED = "2024-04-01T00:00:00Z"
ROLES_MANAGE = ["member", "reader"]
ROLES_VIEW = ["reader"]


def _version(request) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": UPDATED,
        "links": [{"rel": "self", "href": request.build_absolute_uri(reverse("openstack-identity-v3"))}],
        "media-types": MEDIA_TYPES,
    }


class VersionsView(OpenStackView):
    authenticated = False

    def get(self, request):
        return json_response({"versions": {"values": [_version(request)]}}, status=300)


class V3View(OpenStackView):
    authenticated = False

    def get(self, request):
        return json_response({"version": _version(request)})


def _token_body(request, token, membership) -> dict:
    user = token.user
    roles = (
        ROLES_MANAGE if (user.is_staff or (membership is not None and membership.can_manage)) else ROLES_VIEW
    )
    if user.is_staff:
        roles = ["admin", *roles]
    image_url = request.build_absolute_uri(reverse("openstack-image-versions"))
    return {
        "token": {
            "methods": ["password"],
            "user": {
                "id": str(user.pk),
                "name": user.get_username(),
                "domain": DOMAIN,
                "password_expires_at": None,
            },
            "audit_ids": [token.audit_id],
            "expires_at": token.expires_at.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": token.created_at.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "project": {"id": str(token.tenant.pk), "name": token.tenant.name, "domain": DOMAIN},
            "is_domain": False,
            "roles": [{"id": name, "name": name} for name in roles],
            "catalog": [
                {
                    "id": "image",
                    "type": "image",
                    "name": "glance",
                    "endpoints": [
                        {
                            "id": f"image-{interface}",
                            "interface": interface,
                            "region": REGION,
                            "region_id": REGION,
                            "url": image_url,
                        }
                        for interface in ("public", "internal", "admin")
                    ],
                }
            ],
        }
    }


def _password_credentials(body) -> tuple[str, str, dict]:
    def member(value, key):
        if not isinstance(value, dict) or key not in value:
            raise ApiError(400, _("Send auth.identity.password.user with name and password."))
        return value[key]

    identity = member(member(body, "auth"), "identity")
    methods = identity.get("methods") if isinstance(identity, dict) else None
    if not isinstance(methods, list) or "password" not in methods:
        raise ApiError(401, _("Only password authentication is supported."))
    user = member(member(identity, "password"), "user")
    name, password = member(user, "name"), member(user, "password")
    scope = body["auth"].get("scope") or {}
    project = scope.get("project") if isinstance(scope, dict) else scope
    if not isinstance(name, str) or not isinstance(password, str) or not isinstance(project or {}, dict):
        raise ApiError(400, _("Send auth.identity.password.user with name and password."))
    return name, password, project or {}


class TokensView(OpenStackView):
    """`POST /v3/auth/tokens` (password login), `GET`/`HEAD` (validate `X-Subject-Token`), `DELETE`."""

    authenticated = False

    def render_error(self, status, message, *, headers=None):
        # Keystone's error shape, not Glance's.
        phrase = HTTPStatus(status).phrase
        return json_response(
            {"error": {"code": status, "message": message, "title": phrase}}, status=status, headers=headers
        )

    def post(self, request):
        name, password, project = _password_credentials(read_json(request))
        user = authenticate(request, username=name, password=password)
        if getattr(request, "axes_locked_out", False):
            # Answered here in Keystone's JSON shape rather than by axes' middleware as an HTML page.
            request.axes_locked_out = False
            raise ApiError(
                429, _("Too many failed logins for this account from this address; try again later.")
            )
        if user is None or not user.is_active:
            raise ApiError(401, _("The request you have made requires authentication."))
        scoped = project_for_login(
            user=user, project_name=str(project.get("name") or ""), project_id=str(project.get("id") or "")
        )
        if scoped is None:
            raise ApiError(401, _("The user is not a member of that project (tenant)."))
        tenant, membership = scoped
        key, token = identity_token_issue(user=user, tenant=tenant, request=request)
        return json_response(
            _token_body(request, token, membership), status=201, headers={"X-Subject-Token": key}
        )

    def _subject(self, request):
        caller_token = identity_token_valid(request.headers.get("X-Auth-Token", ""))
        if caller_token is None:
            raise ApiError(401, _("The request you have made requires authentication."))
        subject = identity_token_valid(request.headers.get("X-Subject-Token", ""))
        if subject is None:
            raise ApiError(404, _("Could not find token."))
        if subject.user_id != caller_token.user_id and not caller_token.user.is_staff:
            raise ApiError(403, _("You may validate only your own tokens."))
        return subject

    def get(self, request):
        from tenants.models import Membership

        token = self._subject(request)
        membership = Membership.objects.filter(user=token.user, tenant=token.tenant).first()
        key = request.headers.get("X-Subject-Token", "")
        return json_response(_token_body(request, token, membership), headers={"X-Subject-Token": key})

    def head(self, request):
        self._subject(request)
        return json_response(None, status=200)

    def delete(self, request):
        token = self._subject(request)
        identity_token_revoke(token=token, request=request)
        return HttpResponse(status=204)
