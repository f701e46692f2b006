"""``modelport export-mobile``: every ``.ort`` loads in onnxruntime and matches the ONNX it was made from.

Reads the example models in ``models/`` (never writes there) and exports into a temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner, Result
from modelport.converters.quantize.cli import export_mobile

from examples import datasets

MODELS = Path(__file__).resolve().parents[3] / "models"
Array = np.ndarray[Any, Any]


def _export(*args: str | Path) -> Result:
    return CliRunner().invoke(
        export_mobile, ["--repository", str(MODELS), "--runs", "3", *map(str, args)], catch_exceptions=False
    )


def _run(path: Path, feed: dict[str, Array], config: dict[str, str] | None = None) -> list[Array]:
    options = ort.SessionOptions()
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in session.run(None, feed)]


def _operators(config: Path) -> set[str]:
    lines = [line for line in config.read_text().splitlines() if line and not line.startswith("#")]
    return {op for line in lines for op in line.split(";")[2].split(",")}


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Array]:
    split = datasets.digits()
    path = tmp_path_factory.mktemp("digits") / "calibration.npz"
    np.savez(path, images=split.train_x[:200])
    return path, split.validation_x[:64]


def test_static_int8_ort_matches_its_onnx(tmp_path: Path, digits_npz: tuple[Path, Array]) -> None:
    calibration, images = digits_npz
    out = tmp_path / "digits-mobile"
    result = _export(
        "--name", "digits", "--quantize", "static", "--calibration", calibration, "--output", out
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "mobile_export.json",
        "model.onnx",
        "model.ort",
        "required_operators.config",
    ]
    from_ort, from_onnx = (
        _run(out / "model.ort", {"images": images}),
        _run(out / "model.onnx", {"images": images}),
    )
    np.testing.assert_allclose(from_ort[0], from_onnx[0], atol=1e-6)
    operators = _operators(out / "required_operators.config")
    assert operators & {"QLinearConv", "ConvInteger", "QuantizeLinear"}, operators  # an INT8 graph
    report = json.loads((out / "mobile_export.json").read_text())
    assert report["mode"] == "static" and report["sizes"]["ort"] == (out / "model.ort").stat().st_size
    assert report["ort_vs_onnx_max_abs_error"] <= 1e-6 and report["accuracy"]["passed"] is True
    assert report["output"] == str(out / "model.ort")


def test_dynamic_lstm_ort_matches_its_onnx(tmp_path: Path) -> None:
    signals, _ = datasets.waveforms(64, seed=datasets.WAVEFORM_VALIDATION_SEED)
    validation = tmp_path / "signals.npz"
    np.savez(validation, signal=signals)
    out = tmp_path / "waveform-mobile"
    result = _export(
        "--name", "waveform", "--quantize", "dynamic", "--validation", validation, "--output", out
    )
    assert result.exit_code == 0, result.output
    from_ort = _run(out / "model.ort", {"signal": signals})[0]
    from_onnx = _run(out / "model.onnx", {"signal": signals})[0]
    np.testing.assert_allclose(from_ort, from_onnx, atol=1e-6)
    assert "DynamicQuantizeLSTM" in _operators(out / "required_operators.config")


def test_runtime_style_needs_and_records_its_session_entry(tmp_path: Path) -> None:
    features = np.random.default_rng(0).random((8, 64), dtype=np.float32)
    out = tmp_path / "mlp-mobile"
    result = _export("--name", "mlp", "--optimization-style", "runtime", "--output", out)
    assert result.exit_code == 0, result.output
    ort_path = out / "model.with_runtime_opt.ort"
    report = json.loads((out / "mobile_export.json").read_text())
    assert report["mode"] == "none" and "converted" not in report["sizes"]
    assert report["ort_session_config"] == {"session.enable_saved_runtime_optimizations": "1"}
    assert (out / "required_operators.with_runtime_opt.config").is_file()
    replayed = _run(ort_path, {"features": features}, report["ort_session_config"])[0]
    fp32 = _run(MODELS / "mlp" / "1" / "model.onnx", {"features": features})[0]
    np.testing.assert_allclose(replayed, fp32, atol=1e-5)


def test_gate_failure_writes_no_output(tmp_path: Path) -> None:
    out = tmp_path / "never"
    # INT8 never reproduces FP32 to the last bit, so a bound of 1e-7 on the max abs error always refuses.
    result = _export(
        "--name", "waveform", "--quantize", "dynamic", "--max-abs-error", "1e-7", "--output", out
    )
    assert result.exit_code == 1
    assert "exceeds --max-abs-error 1e-07; nothing was written" in result.output
    assert not out.exists()
