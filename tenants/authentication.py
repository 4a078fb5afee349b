from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from .models import ApiToken
from .services import api_token_touch


class HashedTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, checked against the SHA256 of keys made by `createapitoken`."""

    keyword = "Token"

    def authenticate_credentials(self, key):
        token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if token.is_expired():
            raise exceptions.AuthenticationFailed(
                _("This API token expired on %(date)s; create a new one (manage.py createapitoken).")
                % {"date": token.expires_at.strftime("%Y-%m-%d %H:%M UTC")}
            )
        api_token_touch(token=token)
        return token.user, token
