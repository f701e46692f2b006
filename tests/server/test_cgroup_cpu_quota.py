"""The cgroup CPU quota read from a fake cgroup folder (v2 and v1 layouts), and the budget it caps."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modelport.server.cgroup_limits import cpu_quota, describe_limits, usable_cpus

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import start_server


def test_v2_quota_caps_the_usable_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert cpu_quota(tmp_path) == 1.0
    assert usable_cpus(tmp_path) == 1
    assert "CPU quota 1.00" in describe_limits(tmp_path)


def test_v1_quota_rounds_up_and_max_means_none(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpu_quota(tmp_path) == 1.5
    assert usable_cpus(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000")
    assert cpu_quota(tmp_path) is None
    assert usable_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_the_server_reports_its_limits_at_start() -> None:
    """One start-up line with the usable CPUs and memory limit this machine's cgroup gives the server."""
    with tempfile.TemporaryDirectory() as scratch:
        repository = Path(scratch)
        write_model(repository, "identity", identity_model())
        with start_server(repository) as server:
            logs = server.logs()
    assert f"resources: {describe_limits()}" in logs, logs
