"""``modelport doctor`` as a user runs it (the installed command, in a subprocess), on real repositories."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from modelport.server.doctor import check_environment

from tests.helpers.onnx_models import identity_model, write_config, write_corrupt_model, write_model

COMMAND = Path(sys.executable).parent / "modelport"  # the console script of the running environment
ALL_PORTS_ANY = ("--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", "--management-port", "0")


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MODELPORT_")}
    return subprocess.run(
        [str(COMMAND), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


def test_a_good_repository_passes(tmp_path: Path) -> None:
    write_model(tmp_path, "identity", identity_model(), config={"max_batch_size": 8, "dynamic_batching": {}})
    result = _doctor("--repository", str(tmp_path), *ALL_PORTS_ANY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    model identity: version 1 loads (max_batch_size 8, dynamic batching)" in result.stdout
    assert "ok    onnxruntime: " in result.stdout and "CPUExecutionProvider" in result.stdout
    assert "shared memory: " in result.stdout and "cpu int8: " in result.stdout
    assert "FAIL" not in result.stdout


def test_a_corrupt_model_and_a_bad_config_key_fail_naming_file_and_key(tmp_path: Path) -> None:
    write_model(tmp_path, "good", identity_model())
    corrupt = write_corrupt_model(tmp_path, "broken")
    write_model(tmp_path, "misconfigured", identity_model())
    config = write_config(tmp_path, "misconfigured", {"max_batch_size": 8, "dynamic_batchin": {}})
    result = _doctor("--repository", str(tmp_path), *ALL_PORTS_ANY)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    broken = next(line for line in lines if line.startswith("FAIL  model broken: "))
    assert str(corrupt) in broken
    misconfigured = next(line for line in lines if line.startswith("FAIL  model misconfigured: "))
    assert str(config) in misconfigured and "dynamic_batchin" in misconfigured
    assert any(line.startswith("ok    model good: version 1 loads") for line in lines)
    assert "2 problem(s) to fix" in result.stdout


def test_a_busy_port_is_reported(tmp_path: Path) -> None:
    write_model(tmp_path, "identity", identity_model())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        result = _doctor(
            "--repository", str(tmp_path), "--host", "127.0.0.1", *ALL_PORTS_ANY, "--grpc-port", str(busy)
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL  port: 127.0.0.1:{busy} (--grpc-port) is not free" in result.stdout


def test_a_missing_repository_fails(tmp_path: Path) -> None:
    result = _doctor("--repository", str(tmp_path / "absent"), *ALL_PORTS_ANY)
    assert result.returncode != 0
    assert "absent" in result.stdout + result.stderr


def test_int8_flags_and_small_shared_memory_are_reported(tmp_path: Path) -> None:
    # The CPU flags come from /proc/cpuinfo's text; given here, both kinds of CPU are checked on any machine.
    vnni = {f.topic: f for f in check_environment(cpuinfo="flags\t\t: sse avx2 avx512f avx512_vnni\n")}
    assert vnni["cpu int8"].level == "ok" and "avx512_vnni" in vnni["cpu int8"].text
    plain = {f.topic: f for f in check_environment(cpuinfo="flags\t\t: sse avx2\n", shm=tmp_path / "absent")}
    assert plain["cpu int8"].level == "note" and "reduce_range" in plain["cpu int8"].text
    assert plain["shared memory"].level == "FAIL" and "absent" in plain["shared memory"].text
