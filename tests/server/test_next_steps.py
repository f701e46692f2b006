"""Once ready, ``modelport serve`` prints three things to try; each printed command works as printed."""

from __future__ import annotations

import os
import pty
import shlex
import subprocess
from pathlib import Path

from modelport.server.next_steps import wanted

from tests.helpers.server_process import start_server
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
_HEADER = "modelport is ready. Try, from a second shell:"


def _printed_commands(logs: str) -> list[str]:
    lines = logs.splitlines()
    start = lines.index(_HEADER) + 1
    commands = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        commands.append(line.strip())
    return commands


def test_the_printed_commands_run_against_the_server() -> None:
    with start_server(MODELS, "--next-steps", "on") as server:
        wait_for(lambda: _HEADER in server.logs(), "the next steps printed")
        wait_for(lambda: len(_printed_commands(server.logs())) == 3, "the three commands printed")
        commands = _printed_commands(server.logs())
        assert len(commands) == 3 and f"-m examples.client_grpc --url {server.grpc_url}" in commands[1]
        assert commands[0].endswith(f"{server.http_url}/v2/models/denoiser")
        assert commands[2] == f"curl -s http://{server.metrics_url}/metrics"
        assert f"or open http://{server.http_url}/console in a browser." in server.logs().splitlines()
        outputs = [
            subprocess.run(
                shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
            ).stdout
            for command in commands
        ]
    assert '"name":"denoiser"' in outputs[0].replace(" ", "")
    assert "correct" in outputs[1]
    assert "modelport_requests_total" in outputs[2] or "# HELP" in outputs[2]


def test_nothing_is_printed_when_stdout_is_not_a_terminal() -> None:
    # start_server's stdout is a file, as a container's is: auto (the default) stays quiet.
    with start_server(MODELS) as server:
        logs = server.logs()
    assert _HEADER not in logs


def test_auto_follows_whether_stdout_is_a_terminal(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    try:
        with os.fdopen(os.dup(secondary), "w") as terminal, (tmp_path / "log").open("w") as file:
            assert wanted("auto", terminal) and not wanted("auto", file)
            assert wanted("on", file) and not wanted("off", terminal)
    finally:
        os.close(primary)
        os.close(secondary)
