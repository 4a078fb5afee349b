from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import services


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it (only its hash is stored: copy it now); with --list, "
        "print the user's tokens with their expiry and last use instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to recognise the token by.")
        parser.add_argument(
            "--days", type=int, default=None, help="The token is refused after this many days (default: never)."
        )
        parser.add_argument("--list", action="store_true", dest="list_only", help="List the user's tokens; create none.")

    def handle(self, *args, username, name, days, list_only, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if list_only:
            self.list_tokens(user)
            return
        try:
            _token, key = services.api_token_create(user=user, name=name, expires_in_days=days)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(key)

    def list_tokens(self, user):
        def when(value):
            return value.strftime("%Y-%m-%d %H:%M") if value else "-"

        self.stdout.write(f"{'prefix':10} {'name':20} {'created':16} {'expires':16} {'last used':16}")
        for token in user.api_tokens.order_by("created_at", "pk"):
            expires = when(token.expires_at) + (" (expired)" if token.is_expired() else "")
            self.stdout.write(
                f"{token.prefix:10} {token.name or '-':20} {when(token.created_at):16} {expires:16} "
                f"{when(token.last_used_at):16}"
            )
