"""The rules for what a client may name in the system shared-memory extension: region names and keys.

A *key* is a POSIX shared-memory object name as ``shm_open`` takes it: an optional leading ``/`` and then one
file name in ``/dev/shm``, 1 to :data:`MAX_KEY_LENGTH` characters out of ASCII letters, digits and
``_ . - + @ = , ~``, not starting with ``.``. So a key is never a path (``/dev/shm/../etc/passwd``,
``a/b``, ``..``), never a hidden file, never a named semaphore (``sem.*``), and never one of the server's
own regions: keys starting with :data:`workers.shm.INTERNAL_PREFIX` are refused (the files behind the keys
that pass are checked again once opened, see :mod:`regions`). A *region name* is the client's handle for a
registration: 1 to :data:`MAX_REGION_NAME` printable characters without ``/`` (it is a path segment of the
REST routes).
"""

from __future__ import annotations

import re

from ..errors import InvalidInput
from ..workers.shm import INTERNAL_PREFIX

__all__ = ["KEY_RULE", "MAX_KEY_LENGTH", "MAX_REGION_NAME", "check_key", "check_region_name"]

MAX_KEY_LENGTH = 255  # NAME_MAX
MAX_REGION_NAME = 256
_KEY = re.compile(rf"/?([A-Za-z0-9_+@=,~-][A-Za-z0-9_.+@=,~-]{{0,{MAX_KEY_LENGTH - 1}}})")
_REGION_NAME = re.compile(rf"[^\x00-\x1f\x7f/]{{1,{MAX_REGION_NAME}}}")
KEY_RULE = (
    f"an optional '/' and 1 to {MAX_KEY_LENGTH} ASCII letters, digits or '_.-+@=,~', not starting with '.' "
    "(a POSIX shared-memory name as shm_open takes it, never a path)"
)
_SHOWN = 40
_SEMAPHORE_PREFIX = "sem."  # glibc's named semaphores: a process's locks, never a client's tensors


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "...")


def check_region_name(name: object) -> str:
    """``name`` if it is a valid region name, else :class:`InvalidInput` saying the rule."""
    if not isinstance(name, str) or not _REGION_NAME.fullmatch(name):
        shown = _shown(name) if isinstance(name, str) else type(name).__name__
        raise InvalidInput(
            f"system shared memory region name {shown} is not valid: give 1 to {MAX_REGION_NAME} printable "
            "characters without '/'"
        )
    return name


def check_key(key: object, *, region: str) -> str:
    """The file name in ``/dev/shm`` that ``key`` names (its leading ``/`` dropped), else
    :class:`InvalidInput` naming the region and the rule."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(
            f"system shared memory region '{region}': 'key' is missing; give the name the shared memory "
            f"object was created with (shm_open), {KEY_RULE}"
        )
    match = _KEY.fullmatch(key)
    if match is None:
        raise InvalidInput(
            f"system shared memory region '{region}': key {_shown(key)} is not valid: {KEY_RULE}"
        )
    name = match[1]
    if name.startswith(_SEMAPHORE_PREFIX):
        raise InvalidInput(
            f"system shared memory region '{region}': key {_shown(key)} names a POSIX semaphore (sem_open "
            f"keeps them in /dev/shm as '{_SEMAPHORE_PREFIX}*'), not shared memory; register a shared memory "
            "object"
        )
    if name.startswith(INTERNAL_PREFIX):
        raise InvalidInput(
            f"system shared memory region '{region}': key {_shown(key)} is reserved for the server's own "
            f"memory (keys starting with '{INTERNAL_PREFIX}' cannot be registered); create the region under "
            "another name"
        )
    return name
