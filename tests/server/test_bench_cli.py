"""``modelport bench`` as a user runs it (the installed command, in a subprocess) against the real server.

Short sweeps (``--concurrency 1,2 --duration 1``) over REST (wrk) and gRPC (h2load), installed on demand as
the command does; the in-process Python generator once. Every number is checked against another one it must
agree with: the rate against completed requests over the measured duration, the generator's count against
the server's statistics, the percentiles' order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.onnx_models import add_sub_model, identity_model, mlp_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

COMMAND = Path(sys.executable).parent / "modelport"  # the console script of the running environment
FEATURES = 16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("bench-repository")
    batching = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 0}}
    write_model(root, "mlp", mlp_model(features=FEATURES), config=batching)
    write_model(root, "addsub", add_sub_model("INT32", (-1, 4)), config=batching)
    write_model(root, "text", identity_model("BYTES", (-1, 3)), config=batching)
    write_model(root, "ragged", identity_model("FP32", (-1, "length", 2)), config={"max_batch_size": 8})
    with start_server(root) as process:
        yield process


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), "bench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def _check_steps(record: dict[str, Any], levels: list[int]) -> None:
    assert [step["concurrency"] for step in record["steps"]] == levels
    for step in record["steps"]:
        assert step["requests"] > 0 and step["failures"] == 0, step
        assert 0.5 <= step["duration_s"] <= 5.0, step
        assert step["requests_per_s"] == pytest.approx(step["requests"] / step["duration_s"], rel=0.01)
        assert step["inferences_per_s"] == pytest.approx(step["requests_per_s"] * record["batch"])
        assert 0 < step["p50_ms"] <= step["p90_ms"] <= step["p99_ms"], step
        server = step["server"]
        # The server counted the same requests, give or take those in flight when the warm-up or the step
        # ended (the generator stops without waiting for them; the server still answers them).
        slack = 2 * step["concurrency"]
        assert step["requests"] - slack <= server["requests"] <= step["requests"] + slack, step
        assert server["failures"] == 0
        assert server["queue_ms"] >= 0 and server["compute_ms"] > 0
        assert server["compute_ms"] == pytest.approx(
            server["compute_input_ms"] + server["compute_infer_ms"] + server["compute_output_ms"]
        )
        # Time in the server is part of what the clients waited for: ``concurrency`` waits at a time.
        in_server_ms = (server["queue_ms"] + server["compute_ms"]) * server["requests"]
        assert in_server_ms <= step["concurrency"] * (step["duration_s"] + 1) * 1000


def _png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (640, 400)
    assert 10_000 < len(data) < 200_000


def test_http_and_grpc_sweeps_record_plot_and_compare(server: ServerProcess, tmp_path: Path) -> None:
    http_json, grpc_json = tmp_path / "http.json", tmp_path / "grpc.json"
    first = bench(
        "mlp", "--url", server.http_url, "--concurrency", "1,2", "--duration", "1", "--out", str(http_json)
    )
    _ok(first)
    assert "load generator: wrk " in first.stdout
    record = json.loads(http_json.read_text())
    assert record["format"] == "modelport-bench/1"
    assert (record["model"], record["protocol"], record["encoding"], record["batch"]) == (
        "mlp",
        "http",
        "binary",
        1,
    )
    assert record["generator"].startswith("wrk ") and record["generator_note"] == ""
    assert (record["duration_s"], record["warm_up_s"]) == (1.0, 1.0)
    assert record["server"]["name"] == "modelport" and record["data"] == "random"
    assert record["inputs"] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, FEATURES], "sent": [1, FEATURES]}
    ]
    _check_steps(record, [1, 2])

    plot = tmp_path / "curve.png"
    second = bench(
        "mlp", "--url", server.grpc_url, "--protocol", "grpc", "--concurrency", "1,2", "--duration", "1",
        "--batch", "4", "--threads", "2", "--label", "over grpc", "--out", str(grpc_json),
        "--compare", str(http_json), "--plot", str(plot),
    )  # fmt: skip
    _ok(second)
    assert "load generator: h2load " in second.stdout
    grpc_record = json.loads(grpc_json.read_text())
    assert (grpc_record["protocol"], grpc_record["encoding"], grpc_record["batch"]) == ("grpc", "raw", 4)
    assert (grpc_record["label"], grpc_record["threads"]) == ("over grpc", 2)
    _check_steps(grpc_record, [1, 2])
    # The comparison table has both runs and the ratio of their throughputs at each concurrency.
    assert "comparison" in second.stdout and "modelport 0.1.0 http" in second.stdout
    for step, other in zip(grpc_record["steps"], record["steps"], strict=True):
        assert f"{step['inferences_per_s'] / other['inferences_per_s']:.2f}x" in second.stdout
    _png(plot)
    alone = tmp_path / "alone.png"
    _ok(bench("mlp", "--url", server.http_url, "--concurrency", "1", "--duration", "1", "--plot", str(alone)))
    _png(alone)
    assert alone.read_bytes() != plot.read_bytes()  # the overlay drew a second curve


def test_json_encoding_and_npz_data_set_the_request(server: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "rows.npz"
    np.savez(data, INPUT0=np.ones((3, 4), np.int32), INPUT1=np.arange(12, dtype=np.int32).reshape(3, 4))
    out = tmp_path / "out.json"
    result = bench(
        "addsub", "--url", server.http_url, "--json", "--data", str(data), "--model-version", "1",
        "--concurrency", "1", "--duration", "1", "--out", str(out),
    )  # fmt: skip
    _ok(result)
    record = json.loads(out.read_text())
    assert (record["encoding"], record["batch"], record["data"], record["version"]) == (
        "json",
        3,
        str(data),
        "1",
    )
    _check_steps(record, [1])


def test_the_python_generator_runs_with_a_note(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = bench(
        "addsub", "--url", server.grpc_url, "--protocol", "grpc", "--generator", "python",
        "--concurrency", "2", "--duration", "1", "--out", str(out),
    )  # fmt: skip
    _ok(result)
    record = json.loads(out.read_text())
    assert record["generator"] == "python (tritonclient asyncio)"
    assert "may be the bottleneck" in record["generator_note"]
    assert "may be the bottleneck" in result.stdout
    _check_steps(record, [2])


def test_auto_falls_back_to_python_with_a_note_where_wrk_is_missing(
    server: ServerProcess, tmp_path: Path
) -> None:
    # A PATH with only this environment's bin: no wrk, and no apt-get to install it with.
    out = tmp_path / "out.json"
    result = bench(
        "mlp", "--url", server.http_url, "--concurrency", "2", "--duration", "1", "--warm-up", "0",
        "--out", str(out), env={"PATH": str(COMMAND.parent)},
    )  # fmt: skip
    _ok(result)
    assert "note: no native load generator (wrk for HTTP, h2load for gRPC) is installed" in result.stderr
    record = json.loads(out.read_text())
    assert (
        record["generator"] == "python (tritonclient asyncio)"
        and "may be the bottleneck" in record["generator_note"]
    )
    _check_steps(record, [2])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bytes_inputs_are_generated_and_sent(server: ServerProcess, tmp_path: Path, protocol: str) -> None:
    out = tmp_path / "out.json"
    url = server.http_url if protocol == "http" else server.grpc_url
    result = bench(
        "text", "--url", url, "--protocol", protocol, "--batch", "2", "--concurrency", "1", "--duration", "1",
        "--warm-up", "0", "--out", str(out),
    )  # fmt: skip
    _ok(result)
    record = json.loads(out.read_text())
    assert record["inputs"] == [{"name": "INPUT0", "datatype": "BYTES", "shape": [-1, 3], "sent": [2, 3]}]
    _check_steps(record, [1])


def test_shape_sets_the_dynamic_dimensions(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = bench(
        "ragged", "--url", server.grpc_url, "--protocol", "grpc", "--shape", "INPUT0:5,2", "--batch", "3",
        "--concurrency", "1", "--duration", "1", "--warm-up", "0", "--out", str(out),
    )  # fmt: skip
    _ok(result)
    record = json.loads(out.read_text())
    assert record["inputs"] == [
        {"name": "INPUT0", "datatype": "FP32", "shape": [-1, -1, 2], "sent": [3, 5, 2]}
    ]
    _check_steps(record, [1])
    url = ("--url", server.http_url, "--duration", "1", "--concurrency", "1")
    _fails(bench("ragged", *url, "--shape", "INPUT0:5,3"), 1, "'INPUT0' has shape [-1, -1, 2]; give its 2")
    _fails(bench("ragged", *url, "--shape", "OTHER:5,2"), 1, "NAME one of ['INPUT0']")
    _fails(bench("ragged", *url, "--shape", "INPUT0:five,2"), 1, "the dimensions must be integers")


def _fails(result: subprocess.CompletedProcess[str], code: int, *messages: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_arguments_are_clear_errors(server: ServerProcess, tmp_path: Path) -> None:
    url = ("--url", server.http_url, "--duration", "1", "--concurrency", "1")
    _fails(bench("nope", *url), 1, "model 'nope' is not available: GET http://", "unknown model: 'nope'")
    _fails(
        bench("nope", "--url", server.grpc_url, "--protocol", "grpc"),
        1,
        "model 'nope' is not available",
        "unknown model: 'nope'",
    )
    _fails(
        bench("mlp", "--url", server.http_url, "--concurrency", "1,x"),
        2,
        "'1,x' is not a comma-separated list",
    )
    _fails(
        bench("mlp", "--url", server.http_url, "--concurrency", "0,2"),
        2,
        "every concurrency must be at least 1",
    )
    _fails(bench("mlp", *url, "--data", str(tmp_path / "missing.npz")), 1, "missing.npz: no such file")
    wrong_name = tmp_path / "wrong_name.npz"
    np.savez(wrong_name, pixels=np.zeros((1, FEATURES), np.float32))
    _fails(
        bench("mlp", *url, "--data", str(wrong_name)),
        1,
        "holds arrays ['pixels']",
        "takes inputs ['features']",
    )
    wrong_type = tmp_path / "wrong_type.npz"
    np.savez(wrong_type, features=np.zeros((1, FEATURES), np.float64))
    _fails(bench("mlp", *url, "--data", str(wrong_type)), 1, "'features' is float64, the model wants FP32")
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, features=np.zeros((2, FEATURES + 1), np.float32))
    _fails(
        bench("mlp", *url, "--data", str(wrong_shape)),
        1,
        "'features' has shape [2, 17], the model wants [-1, 16]",
    )
    _fails(
        bench("mlp", *url, "--batch", "100"), 1, "the server refused the benchmark request", "no load was run"
    )
    not_results = tmp_path / "not_results.json"
    not_results.write_text('{"steps": []}')
    _fails(
        bench("mlp", *url, "--compare", str(not_results)), 1, "not a results file of 'modelport bench --out'"
    )
    _fails(bench("mlp", "--url", "127.0.0.1:9", *url[2:]), 1, "cannot reach the server at http://127.0.0.1:9")
    _fails(bench("mlp", *url, "--generator", "h2load"), 1, "--generator h2load cannot drive http")
    nowhere = tmp_path / "no-such-folder" / "out.json"
    _fails(
        bench("mlp", *url, "--out", str(nowhere)),
        1,
        f"--out {nowhere}: folder {nowhere.parent} does not exist",
    )


def _without(package: str, tmp_path: Path) -> dict[str, str]:
    """An environment where ``package`` cannot be imported (a stand-in that raises, first on the path): what
    a serving environment without the ``bench`` extra sees."""
    blocker = tmp_path / f"without-{package}" / package
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(f"raise ImportError('no {package} here', name='{package}')\n")
    return {"PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}


def test_plot_without_matplotlib_names_the_extra(server: ServerProcess, tmp_path: Path) -> None:
    plot = tmp_path / "curve.png"
    result = bench(
        "mlp", "--url", server.http_url, "--duration", "1", "--concurrency", "1", "--plot", str(plot),
        env=_without("matplotlib", tmp_path),
    )  # fmt: skip
    _fails(result, 1, "--plot needs matplotlib", "pip install 'modelport[bench]'")
    assert not plot.exists()


def test_bench_without_its_extra_names_it(server: ServerProcess, tmp_path: Path) -> None:
    result = bench("mlp", "--url", server.http_url, env=_without("rich", tmp_path))
    _fails(result, 1, "'modelport bench' needs packages that are not installed (rich)", "'modelport[bench]'")
