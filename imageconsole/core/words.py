"""Messages that can be worded again in another language.

A message made in a worker (an import's error, a log entry) is read later by people in their own language.
Modules whose messages are stored import `gettext as _` from here instead of from Django: `_("...")` gives
a `Message`, a `str` in the current language that also remembers its English msgid, and `Message % params`
gives another one that remembers the values. `words_of(message)` turns it into JSON to store beside the
text; `render_words(data)` words it again, in the language active where it is shown.

Values that are messages or lazy translations are worded again too; any other value (a file name, a
tool's own output) is kept as it was.
"""

from __future__ import annotations

import errno

from django.template.defaultfilters import filesizeformat
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_noop


def _translate(msgid: str, context: str = "") -> str:
    return translation.pgettext(context, msgid) if context else translation.gettext(msgid)


class Message(str):
    """A translated message that keeps its msgid (and context, and values) for wording it again."""

    msgid: str
    context: str
    params: dict | None

    def __new__(cls, msgid: str, params: dict | None = None, context: str = ""):
        text = _translate(msgid, context)
        if params is not None:
            text = text % {key: render_value(value) for key, value in params.items()}
        message = super().__new__(cls, text)
        message.msgid, message.context, message.params = msgid, context, params
        return message

    def __mod__(self, values):
        if not isinstance(values, dict) or self.params is not None:
            return str(self) % values
        return Message(self.msgid, dict(values), self.context)

    def __getnewargs__(self):
        return (self.msgid, self.params, self.context)

    def __reduce__(self):
        return (Message, (self.msgid, self.params, self.context))

    def words(self) -> dict:
        data: dict = {"m": self.msgid}
        if self.context:
            data["c"] = self.context
        if self.params is not None:
            data["p"] = {key: _value_words(value) for key, value in self.params.items()}
        return data


def gettext(msgid: str) -> Message:
    return Message(msgid)


def pgettext(context: str, msgid: str) -> Message:
    return Message(msgid, context=context)


def _lazy_words(value: Promise) -> dict | str:
    """A lazy translation's msgid and context, read from how Django would pickle it."""
    try:
        func, args = value.__reduce__()[1][:2]
    except (AttributeError, TypeError, ValueError, IndexError):
        func, args = None, ()
    name = getattr(func, "__name__", "")
    if name == "pgettext" and len(args) == 2:
        return {"t": args[1], "c": args[0]}
    if name == "gettext" and len(args) == 1:
        return {"t": args[0], "c": ""}
    with translation.override(None):
        return str(value)


def _value_words(value):
    if isinstance(value, Message):
        return value.words()
    if isinstance(value, Promise):
        return _lazy_words(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def words_of(message) -> dict | None:
    """What to store beside a message's text so that it can be worded again; None for plain text."""
    return message.words() if isinstance(message, Message) else None


def message_of(error: BaseException):
    """An exception's message, as a `Message` when it was made from one (`str(error)` would lose it)."""
    for candidate in (getattr(error, "message", None), *error.args[:1]):
        if isinstance(candidate, Message) and getattr(error, "params", None) is None:
            return candidate
    messages = getattr(error, "messages", None)  # a Django ValidationError: str() would show a list
    if isinstance(messages, list):
        return " ".join(str(message) for message in messages)
    return str(error)


def render_value(value):
    """A stored value in the current language: a message, a word ({"t", "c"}), a size, or as it was."""
    if isinstance(value, Message):
        return Message(value.msgid, value.params, value.context)
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, dict):
        if "m" in value:
            return render_words(value)
        if "t" in value:
            return _translate(value["t"], value.get("c", ""))
        if "size" in value:
            return str(filesizeformat(value["size"]))
        if "items" in value:
            return value.get("join", ", ").join(str(render_value(item)) for item in value["items"])
    if isinstance(value, list):
        return ", ".join(str(render_value(item)) for item in value)
    return value


def render_words(data: dict | None, fallback: str = "") -> str:
    """Stored words in the current language; `fallback` (the text as first written) if they do not fit."""
    if not data or "m" not in data:
        return fallback
    text = _translate(data["m"], data.get("c", ""))
    if "p" not in data:
        return text
    try:
        return text % {key: render_value(value) for key, value in (data["p"] or {}).items()}
    except (KeyError, TypeError, ValueError):
        return fallback or text


# The operating system's reasons, in the words of glibc's English messages: shown inside the console's own
# messages ("Cannot write to /srv/images: No space left on device."), they are worded in the reader's
# language like the rest. Others keep the system's own text.
_OS_REASONS = {
    errno.ENOENT: gettext_noop("No such file or directory"),
    errno.EACCES: gettext_noop("Permission denied"),
    errno.EPERM: gettext_noop("Operation not permitted"),
    errno.ENOSPC: gettext_noop("No space left on device"),
    errno.EDQUOT: gettext_noop("Disk quota exceeded"),
    errno.EROFS: gettext_noop("Read-only file system"),
    errno.EIO: gettext_noop("Input/output error"),
    errno.EEXIST: gettext_noop("File exists"),
    errno.ENOTDIR: gettext_noop("Not a directory"),
    errno.EISDIR: gettext_noop("Is a directory"),
    errno.ENOTEMPTY: gettext_noop("Directory not empty"),
    errno.ENAMETOOLONG: gettext_noop("File name too long"),
    errno.ELOOP: gettext_noop("Too many levels of symbolic links"),
    errno.EBUSY: gettext_noop("Device or resource busy"),
    errno.EMFILE: gettext_noop("Too many open files"),
    errno.EINVAL: gettext_noop("Invalid argument"),
    errno.ECONNREFUSED: gettext_noop("Connection refused"),
    errno.ECONNRESET: gettext_noop("Connection reset by peer"),
    errno.ETIMEDOUT: gettext_noop("Connection timed out"),
    errno.EHOSTUNREACH: gettext_noop("No route to host"),
    errno.ENETUNREACH: gettext_noop("Network is unreachable"),
    errno.EPIPE: gettext_noop("Broken pipe"),
}


def os_reason(error: BaseException) -> str:
    """Why a system call failed (an OSError's errno), as a Message where the console words it."""
    code = getattr(error, "errno", None)
    if code in _OS_REASONS:
        return gettext(_OS_REASONS[code])
    return getattr(error, "strerror", None) or str(error)
