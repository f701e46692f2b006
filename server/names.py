"""The one rule for model names and version numbers, whatever protocol or route they arrive by.

A model name becomes a directory name below the repository, so the rule is what keeps every client-given name
a single, harmless path component: 1 to :data:`MAX_NAME_LENGTH` ASCII characters out of letters, digits and
``_ . - + @ = , ~`` (no path separator, no space, no NUL or control character, nothing a shell or a URL
treats specially), not starting with ``.`` (which refuses ``.``, ``..`` and the hidden directories a scan
skips anyway). A version is 1 to :data:`MAX_VERSION_DIGITS` ASCII digits (``"1"``; ``""`` means "the
latest" where a route allows it), so it always fits Triton's int64 version and never reaches Python's
int-from-string limit. Anything else is :class:`InvalidInput` naming the field and the rule; a name that
follows the rule but names no model is the caller's to report (unknown model).
"""

from __future__ import annotations

import re
import urllib.parse

from .errors import InvalidInput

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_VERSION_DIGITS",
    "NAME_RULE",
    "VERSION_RULE",
    "check_model_name",
    "check_path_names",
    "check_version",
    "is_model_name",
]

MAX_NAME_LENGTH = 128  # well below NAME_MAX (255 bytes) even with a suffix for a temporary copy
MAX_VERSION_DIGITS = 18  # every 18-digit number fits int64, Triton's version type
_NAME = re.compile(rf"[A-Za-z0-9_+@=,~-][A-Za-z0-9_.+@=,~-]{{0,{MAX_NAME_LENGTH - 1}}}")
_VERSION = re.compile(rf"[0-9]{{1,{MAX_VERSION_DIGITS}}}")
NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} ASCII letters, digits or '_.-+@=,~', not starting with '.' "
    "(no '/', no '..', no spaces or control characters)"
)
VERSION_RULE = f"1 to {MAX_VERSION_DIGITS} ASCII digits"
_SHOWN = 40  # characters of a refused value quoted back: enough to recognise it, never a huge echo


def _shown(value: str) -> str:
    """``value`` as a message quotes it: escaped (no NUL or newline reaches a log line), cut short."""
    quoted = ascii(value[:_SHOWN])
    return quoted + (f" (cut, {len(value)} characters)" if len(value) > _SHOWN else "")


def is_model_name(name: str) -> bool:
    """Whether ``name`` follows the rule (for a repository scan, which skips directories that do not)."""
    return _NAME.fullmatch(name) is not None


def check_model_name(name: str, *, field: str = "model name") -> str:
    """``name`` if it follows the rule, else :class:`InvalidInput` naming ``field`` and the rule."""
    if _NAME.fullmatch(name) is None:
        what = "is empty" if not name else f"{_shown(name)} is not allowed"
        raise InvalidInput(f"{field} {what}: a model name is {NAME_RULE}")
    return name


def check_version(version: str, *, field: str = "model version", latest: bool = True) -> str:
    """``version`` if it is a version number (or ``""`` where ``latest`` allows "the latest"), else
    :class:`InvalidInput` naming ``field`` and the rule."""
    if (latest and not version) or _VERSION.fullmatch(version) is not None:
        return version
    raise InvalidInput(f"{field} {_shown(version)} is not a version number ({VERSION_RULE})")


def check_path_names(name: bytes, version: bytes | None, *, also_versions: tuple[str, ...] = ()) -> None:
    """The model name and version of a URL path, as raw segments the client sent, each percent-decoded on
    its own (so ``%2e%2e`` and ``%2f`` are caught; bytes that are no UTF-8 become U+FFFD, which no name
    has) and checked by the rule; ``also_versions`` are words a route takes in place of a version."""
    check_model_name(_segment(name), field="path: model name")
    if version is not None:
        text = _segment(version)
        if text not in also_versions:
            check_version(text, field="path: model version", latest=False)


def _segment(raw: bytes) -> str:
    text = raw.decode("latin-1")
    return urllib.parse.unquote(text, errors="replace") if "%" in text else text
