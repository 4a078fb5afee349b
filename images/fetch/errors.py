"""What a fetch can raise. Every message is meant for a person and never contains a password."""

from __future__ import annotations


class FetchError(Exception):
    """The fetch failed; str(error) says why and, where it can, what to do."""


class URLRefused(FetchError):
    """The URL, or an address it leads to, is not allowed; `rule` names the rule that refused it.

    Rules: ``syntax``, ``scheme``, ``port``, ``host``, ``credentials``, ``address`` (then `category`
    says ``loopback``, ``private``, ``link-local``, ``multicast``, ``reserved``, ``unspecified`` or
    ``not-global``), ``redirects``, ``file-admin``, ``file-roots``.

    `setting` names the server setting behind the rule, for administrators (logs, Django admin); the
    message itself says what the user can do and names no setting.
    """

    def __init__(self, message: str, *, rule: str, category: str = "", setting: str = ""):
        super().__init__(message)
        self.rule = rule
        self.category = category
        self.setting = setting


class FetchCancelled(FetchError):
    """`should_cancel` answered True; the transfer was stopped."""


class TooLarge(FetchError):
    """The server sent more than it announced, or more than the caller's limit."""


class Transient(FetchError):
    """The connection dropped, stalled or the server is busy: the engine resumes (internal)."""
