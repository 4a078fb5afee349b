"""The operation log's words: entries store codes and parameters, and the words are made when an entry is
shown, in the reader's language (an entry written before the language was switched reads in the new one).

- `action` is a code ("image.delete"); each app registers the label of its codes with `register_actions`.
- `message_code` is an English message template marked for translation (gettext_noop), `message_params`
  its values: plain values, `word(...)` (a translatable word, e.g. a status), `size(n)` (bytes, shown as
  "32.3 MB" in the reader's units), a list of those (joined with commas) or `joined(items, " → ")`.
- Entries with a plain `message` (free text, e.g. an error already worded when it happened) show it as is.
"""

from django.utils import translation
from django.utils.translation import gettext

from imageconsole.core.words import Message, render_value

_ACTION_LABELS: dict = {}


def register_actions(labels: dict) -> None:
    """Register the labels of action codes: {"image.delete": pgettext_lazy("Operation", "Delete image")}."""
    _ACTION_LABELS.update(labels)


def registered_actions() -> list[str]:
    return list(_ACTION_LABELS)


def action_label(code: str) -> str:
    label = _ACTION_LABELS.get(code)
    return str(label) if label is not None else code


def word(text, context: str = "") -> dict:
    """A word translated when the entry is shown. `text` may be a lazy translation: its English msgid is kept."""
    with translation.override(None):
        return {"t": str(text), "c": context}


def joined(items: list, separator: str) -> dict:
    return {"items": list(items), "join": separator}


def size(n: int) -> dict:
    return {"size": int(n or 0)}


def _value(value):
    return render_value(value)


def coded(message, code: str, params: dict | None) -> tuple[str, str, dict | None]:
    """A `Message` (imageconsole.core.words) given as free text becomes a code and parameters, so that
    it too is worded in each reader's language."""
    if not code and isinstance(message, Message) and not message.context:
        return str(message), message.msgid, message.words().get("p") or {}
    return message, code, params


def render_message(code: str, params: dict | None, fallback: str = "") -> str:
    if not code:
        return fallback
    values = {key: _value(value) for key, value in (params or {}).items()}
    try:
        return gettext(code) % values
    except (KeyError, TypeError, ValueError):
        return fallback or code


def english(code: str, params: dict | None) -> str:
    """The message in English, kept in `message` for searches."""
    if not code:
        return ""
    with translation.override(None):
        return render_message(code, params)
