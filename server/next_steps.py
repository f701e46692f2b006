"""What to try next, printed once the server is ready (``--next-steps``): a curl, a client script, metrics,
and the console's address.

For a person at a terminal (``make serve``), not for a container's log: ``auto`` prints only when stdout is a
terminal. The addresses are the ones bound (ephemeral ports included); a wildcard host (0.0.0.0, ::) is
shown as the loopback address a second shell on the same machine would use.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["next_steps_text", "print_next_steps", "wanted"]

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}


def _address(host: str, port: int) -> str:
    shown = _WILDCARDS.get(host, f"[{host}]" if ":" in host else host)
    return f"{shown}:{port}"


def _python() -> str:
    """This interpreter, relative to the current folder when it lies below it (``.venv/bin/python``)."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def next_steps_text(*, host: str, metrics_host: str, ports: Mapping[str, Any], models: Sequence[str]) -> str:
    """The lines to print: ``ports`` as in the ready file (``http_port``, ``grpc_port``, ``metrics_port``),
    ``models`` the names now serving (the curl asks for the first one's metadata)."""
    rest = _address(host, int(ports["http_port"]))
    grpc = _address(host, int(ports["grpc_port"]))
    metrics = _address(metrics_host, int(ports["metrics_port"]))
    target = f"/v2/models/{models[0]}" if models else "/v2/health/ready -w '%{http_code}\\n'"
    lines = ["", "modelport is ready. Try, from a second shell:", f"  curl -s {rest}{target}"]
    if Path("examples", "client_grpc.py").is_file():  # in the checkout, whose examples make serve serves
        lines.append(f"  {_python()} -m examples.client_grpc --url {grpc}")
    lines.extend([f"  curl -s http://{metrics}/metrics", f"or open http://{rest}/console in a browser.", ""])
    return "\n".join(lines)


def wanted(choice: str, stream: TextIO | None = None) -> bool:
    """Whether to print for the ``next_steps`` setting: ``on``, ``off``, or ``auto`` (stdout a terminal)."""
    if choice != "auto":
        return choice == "on"
    stream = stream or sys.stdout
    try:
        return os.isatty(stream.fileno())
    except (OSError, ValueError):
        return False


def print_next_steps(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` to stdout (not the log) at once."""
    stream = stream or sys.stdout
    stream.write(text + "\n")
    stream.flush()
