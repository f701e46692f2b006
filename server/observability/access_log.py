"""The access log: one line per inference request, on the ``modelport.access`` logger at INFO.

Off unless ``--access-log`` (:func:`configure_access_log` sets the logger's level, so an off log costs one
level check per request); ``--access-log-sample`` writes that fraction of the successful requests, and every
failed one.

The data plane writes it where it records the request's metrics (one place, once per request). A line carries
the request id (the protocol's ``id``, else one the server generated; it is echoed in the response and in
error messages, so a client's failure can be found here), model, version, protocol, outcome, status (the
transport-neutral error code, ``OK`` on success), duration and the rows of the batch the request ran in.

Text form (values with spaces, quotes or control characters are quoted, so a client's id cannot forge a line):
``request_id=1f3a model=mlp version=1 protocol=grpc outcome=success status=OK duration_ms=0.41 batch_size=4``
and on failure a last ``error="..."``. JSON form: the same keys as fields of the object (``duration_ms`` a
number, ``batch_size`` a number or null).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import secrets
from typing import Any

from ..inference import Protocol
from .metrics import Outcome

__all__ = ["ACCESS_LOGGER", "configure_access_log", "log_access", "new_request_id"]

ACCESS_LOGGER = "modelport.access"
_log = logging.getLogger(ACCESS_LOGGER)
_MAX_VALUE_CHARS = 256  # a client-chosen id or message longer than this is cut in the log line
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")  # written as is; anything else is quoted and escaped


_sample = 1.0  # the fraction of successful requests written


def configure_access_log(*, enabled: bool, sample: float = 1.0) -> None:
    """Turn the access log on (``enabled``) or off, writing a ``sample`` (0 < sample <= 1) of the successful
    requests and every failure. Off: the logger's level is raised to WARNING, above its lines."""
    global _sample  # noqa: PLW0603 -- one access log per process, like its logger
    if not 0 < sample <= 1:
        raise ValueError(f"access log sample {sample} must be > 0 and <= 1")
    _sample = sample
    _log.setLevel(logging.INFO if enabled else logging.WARNING)


# A random 64-bit prefix per process and a counter: an id costs no system call (uuid4 makes a getrandom call
# per request). A forked child draws its own prefix, or it would repeat its parent's ids.
_prefix = ""
_counter = itertools.count()


def _draw_prefix() -> None:
    global _prefix  # noqa: PLW0603 -- one prefix per process, drawn again in a forked child
    _prefix = secrets.token_hex(8)


_draw_prefix()
os.register_at_fork(after_in_child=_draw_prefix)


def new_request_id() -> str:
    """A request id for a request that brought none: 32 lowercase hex digits, a random prefix drawn once per
    process and a counter. Unique per process run (and across processes, unless two draw the same 64-bit
    prefix); not random, so not a secret: consecutive ids differ only in the counter."""
    return f"{_prefix}{next(_counter):016x}"


def log_access(
    *,
    request_id: str,
    model: str,
    version: str,
    protocol: Protocol,
    outcome: Outcome,
    status: str,
    duration_s: float,
    batch_size: int | None,
    error: str | None = None,
) -> None:
    """Write the access-log line of one finished request (nothing when the log is off; a successful request
    only in the configured sample)."""
    if not _log.isEnabledFor(logging.INFO):
        return
    if error is None and _sample < 1 and random.random() >= _sample:
        return
    fields: dict[str, Any] = {
        "request_id": _cut(request_id),
        "model": _cut(model),
        "version": version,
        "protocol": protocol,
        "outcome": outcome.value,
        "status": status,
        "duration_ms": round(duration_s * 1e3, 3),
        "batch_size": batch_size,
    }
    if error is not None:
        fields["error"] = _cut(error)
    _log.info(" ".join(f"{key}={_logfmt(value)}" for key, value in fields.items()), extra=fields)


def _cut(value: str) -> str:
    return value if len(value) <= _MAX_VALUE_CHARS else value[:_MAX_VALUE_CHARS] + "..."


def _logfmt(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in escaped)
    return f'"{escaped}"'
