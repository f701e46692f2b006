"""Large JSON tensors parsed and written a slice at a time, so the event loop keeps the GIL in reach.

orjson parses or writes a whole document in one C call that holds the GIL: 16 MiB of numbers take a few
hundred milliseconds, during which a thread running it (:mod:`large_requests`) leaves the event loop no
turn, and health probes wait. Here a large body's flat numeric ``"data": [...]`` lists are cut out of the
text and parsed :data:`PIECE` bytes at a time (between pieces the GIL can pass); the rest of the document,
now small, is parsed whole. Writing is the mirror image: a large array's numbers are written in pieces and
spliced into the document where a placeholder stood.

A list is cut out only when it is at least :data:`CUT_AT` bytes and flat: numbers (no string, object or
nested list inside) or strings (cut only at a comma between a string's real closing quote and the next
string's opening one); tritonclient sends ``data`` flat. Anything else is parsed whole, as before, and so
is a document whose cut text turns out not to parse (:class:`NotCut`): the pieces never decide what is
valid JSON. Each placeholder is a string no client sent (a random token checked to be absent from the
body), so a client cannot forge one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["CUT_AT", "PIECE", "Cut", "NotCut", "dumps_sliced", "loads_sliced"]

CUT_AT = 1 << 16  # a shorter list costs less to parse whole than to cut out
PIECE = 1 << 18  # bytes of numbers per orjson call: a few milliseconds of GIL
_DATA_KEY = re.compile(rb'"data"\s*:\s*\[')


def _real_quote(raw: bytes, at: int) -> bool:
    """Whether the ``"`` at ``at`` ends a string (it is not escaped: an even run of backslashes before it)."""
    run = 0
    while at - 1 - run >= 0 and raw[at - 1 - run] == 0x5C:  # backslash
        run += 1
    return run % 2 == 0


class NotCut(Exception):
    """A cut list's text is not JSON: parse the document whole (whose error, if any, is the one to tell)."""


class Cut:
    """A flat list cut out of a body (the text between its brackets), parsed on demand in pieces: of
    numbers (``strings`` False) or of strings, cut only between two strings."""

    __slots__ = ("_end", "_raw", "_start", "_strings", "used")

    def __init__(self, raw: bytes, start: int, end: int, *, strings: bool) -> None:
        self._raw, self._start, self._end, self._strings = raw, start, end, strings
        self.used = False

    def _split(self, start: int) -> int:
        """Where the piece that begins at ``start`` ends (a separating comma), or -1: the list's end."""
        raw, end = self._raw, self._end
        at = start + PIECE
        while at < end:
            if not self._strings:
                return raw.find(b",", at, end)
            at = raw.find(b'",', at, end)
            if at < 0:
                return -1
            if _real_quote(raw, at):  # a string ended: in a flat list, the comma separates two values
                return at + 1
            at += 2
        return -1

    def values(self, convert: Callable[[list[Any]], npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """The list's values, each piece turned into an array by ``convert`` (which raises for a bad value)
        and the arrays joined; :class:`NotCut` when a piece is not JSON (the document is parsed whole)."""
        self.used = True
        raw, start = self._raw, self._start
        pieces = []
        while True:
            cut = self._split(start)
            stop = self._end if cut < 0 else cut
            try:
                piece = orjson.loads(b"".join((b"[", raw[start:stop], b"]")))
            except orjson.JSONDecodeError:
                raise NotCut from None
            pieces.append(convert(piece))
            if cut < 0:
                break
            start = cut + 1
        if len(pieces) == 1:
            return pieces[0]
        if pieces[0].dtype != np.object_:
            return np.concatenate(pieces)  # a copy of numbers: milliseconds
        # Object arrays: np.concatenate would take every element's reference in one call; a piece at a time.
        joined = np.empty(sum(len(piece) for piece in pieces), dtype=np.object_)
        at = 0
        for piece in pieces:
            joined[at : at + len(piece)] = piece
            at += len(piece)
        return joined


def _list_end(raw: bytes, start: int) -> tuple[int, bool] | None:
    """The index of the ``]`` closing the flat list whose text begins at ``start``, and whether it holds
    strings; None when it is not a flat list of numbers or of strings (nested, objects, mixed)."""
    first = raw[start : start + 64].lstrip()[:1]
    if first == b'"':
        at = raw.find(b'"]', start)
        while at >= 0 and not _real_quote(raw, at):
            at = raw.find(b'"]', at + 1)
        return None if at < 0 else (at + 1, True)
    end = raw.find(b"]", start)
    if end < 0 or any(raw.find(mark, start, end) >= 0 for mark in (b'"', b"[", b"{")):
        return None
    return end, False


def loads_sliced(raw: bytes) -> tuple[Any, dict[str, Cut]]:
    """``raw`` parsed as JSON, with each large flat list replaced by a placeholder string that names its
    :class:`Cut` in the returned dict (empty when nothing was cut: the document parsed whole)."""
    cuts: dict[str, Cut] = {}
    token = secrets.token_hex(16)
    if raw.find(token.encode()) >= 0:  # never in practice: then nothing is cut
        return orjson.loads(raw), cuts
    parts: list[bytes] = []
    position = 0
    # search() from where the last list ended: the values of a cut list are never scanned by the regex.
    found = _DATA_KEY.search(raw)
    while found is not None:
        start = found.end()  # just after the '['
        span = _list_end(raw, start)
        if span is not None and span[0] - start >= CUT_AT:
            end, strings = span
            name = f"{token}:{len(cuts)}"
            cuts[name] = Cut(raw, start, end, strings=strings)
            parts += (raw[position : start - 1], b'"', name.encode(), b'"')
            position = start = end + 1
        found = _DATA_KEY.search(raw, start)
    if not cuts:
        return orjson.loads(raw), cuts
    parts.append(raw[position:])
    try:
        return orjson.loads(b"".join(parts)), cuts
    except orjson.JSONDecodeError:  # a cut in the wrong place, or a document that is not JSON at all
        return orjson.loads(raw), {}


def dumps_sliced(document: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> bytes:
    """``document`` as JSON (numpy values allowed), where each string value that is a key of ``arrays`` is
    replaced by that flat numeric array's numbers, written :data:`PIECE` bytes' worth at a time."""
    encoded = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    for placeholder, array in arrays.items():
        quoted = orjson.dumps(placeholder)
        at = encoded.find(quoted)
        step = max(1, PIECE // 8)
        pieces = [
            orjson.dumps(array[index : index + step], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
            for index in range(0, array.size, step)
        ]
        encoded = b"".join((encoded[:at], b"[", b",".join(pieces), b"]", encoded[at + len(quoted) :]))
    return encoded
