"""Silencing the frameworks: torch and TensorFlow print progress, graphs and C++ logs straight to the
process's stdout/stderr file descriptors, which would bury the command's own output."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

__all__ = ["silenced"]

_log = logging.getLogger(__name__)


@contextlib.contextmanager
def silenced(enabled: bool = True) -> Iterator[None]:
    """Send everything written to fds 1 and 2 (and Python warnings) to a temporary file while active.

    What was captured is logged at DEBUG level on ``modelport.converters`` afterwards, so ``--verbose`` shows
    it. With ``enabled=False`` this does nothing.
    """
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            captured = sink.read().decode("utf-8", "replace").strip()
            if captured:
                _log.debug("framework output:\n%s", captured)
