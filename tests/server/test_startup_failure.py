"""A server whose startup fails exits 1 with the reason, and has stopped every process it started by then."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import server_command

_EXIT_TIMEOUT_S = 60.0  # the whole failed start, imports included (it takes about 2 s)
_REAP_TIMEOUT_S = 10.0  # for the forkserver and resource tracker to notice their parent is gone


def _alive(process: psutil.Process) -> bool:
    """Whether ``process`` (the very one: psutil checks its start time) still runs; a zombie does not."""
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


@dataclass
class _Watch:
    """The processes a server started, gathered while it runs: its descendants, and (wherever they ended up)
    the worker processes of ``model`` (named ``mp-MODEL``) started since the watch began."""

    pid: int
    model: str
    since: float = field(default_factory=time.time)
    workers: dict[int, psutil.Process] = field(default_factory=dict)
    others: dict[int, psutil.Process] = field(default_factory=dict)

    def _is_worker(self, process: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return process.name() == f"mp-{self.model}"[:15] and process.create_time() >= self.since - 1
        return False

    def look(self) -> None:
        """Note the server's descendants and the model's workers now running."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                self.others.setdefault(child.pid, child)
        for process in psutil.process_iter():
            if self._is_worker(process):
                self.workers.setdefault(process.pid, process)
        for pid in self.workers:
            self.others.pop(pid, None)

    def still_running(self) -> list[psutil.Process]:
        return [p for p in [*self.workers.values(), *self.others.values()] if _alive(p)]

    def kill_survivors(self) -> None:
        """Leave nothing behind for the next test, whatever this one found."""
        for process in self.still_running():
            with contextlib.suppress(psutil.Error):
                process.kill()


@dataclass
class _Failed:
    """How a failed start ended: exit status, output, what was watched, the workers alive at the exit."""

    status: int
    output: str
    watch: _Watch
    workers_running_at_exit: list[psutil.Process]


def _run_until_exit(tmp_path: Path, model: str, *args: str, ready_file: Path | None = None) -> _Failed:
    """Run the real server on ``tmp_path/repo`` (ports 0 on 127.0.0.1, then ``args``) until it exits on its
    own, watching the processes it starts; its output goes to ``tmp_path/server.log``."""
    log_path = tmp_path / "server.log"
    command = server_command(tmp_path / "repo", ready_file or tmp_path / "ready.json", args)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    watch = _Watch(process.pid, model)
    try:
        deadline = time.monotonic() + _EXIT_TIMEOUT_S
        while process.poll() is None:
            assert time.monotonic() < deadline, f"running after {_EXIT_TIMEOUT_S} s:\n{log_path.read_text()}"
            watch.look()
            time.sleep(0.005)
        running_at_exit = [w for w in watch.workers.values() if _alive(w)]
        psutil.wait_procs(watch.still_running(), timeout=_REAP_TIMEOUT_S)
        return _Failed(process.returncode, log_path.read_text(errors="replace"), watch, running_at_exit)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        watch.kill_survivors()


def _model_name() -> str:
    """A model name of this test run only, so its worker processes can be told by name (``mp-NAME``)."""
    return f"fail{os.getpid()}"


def test_a_taken_management_port_exits_1_naming_it_and_leaves_nothing_running(tmp_path: Path) -> None:
    model = _model_name()
    write_model(tmp_path / "repo", model, identity_model())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = _run_until_exit(tmp_path, model, "--management-port", str(port))
    assert failed.status == 1, failed.output
    assert f"Error: cannot listen on 127.0.0.1:{port}: Address already in use" in failed.output
    assert "Traceback" not in failed.output, failed.output  # e.g. an unclosed gRPC server complaining at exit
    assert "startup failed: closing what already started" in failed.output
    assert failed.watch.still_running() == []
    assert not (tmp_path / "ready.json").exists()


def test_a_failure_after_the_models_loaded_stops_their_workers_before_exiting(tmp_path: Path) -> None:
    """The last step of startup fails (the ready file's folder does not exist) once the workers are up: the
    server closes its executors, so none of their workers is running by the time it has exited."""
    model = _model_name()
    write_model(tmp_path / "repo", model, identity_model(), config={"workers": {"min": 2, "max": 2}})
    ready_file = tmp_path / "missing" / "ready.json"
    failed = _run_until_exit(tmp_path, model, "--instance-kind", "process", ready_file=ready_file)
    assert failed.status == 1, failed.output
    assert f"Error: [Errno 2] No such file or directory: '{ready_file}.partial'" in failed.output
    assert "Traceback" not in failed.output, failed.output
    assert "startup failed: closing what already started" in failed.output
    assert len(failed.watch.workers) == 2, failed.output  # both workers had started
    assert failed.workers_running_at_exit == [], failed.output
    assert failed.watch.still_running() == []
