"""``--int8-io``: the digits CNN quantized static (QDQ) takes uint8 images, with the scale and zero point
reported, and computes what the float-IO model computed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from click.testing import CliRunner
from modelport.converters.quantize.cli import export_mobile, quantize

MODELS = Path(__file__).resolve().parents[3] / "models"


def _run(path: Path, feed: dict[str, np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(v) for v in session.run(None, feed)]


def test_static_digits_with_int8_inputs(tmp_path: Path) -> None:
    out = tmp_path / "mobile"
    args = ["--repository", MODELS, "--name", "digits", "--quantize", "static", "--int8-io", "--output", out]
    result = CliRunner().invoke(export_mobile, [*map(str, args), "--runs", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "mobile_export.json").read_text())
    entry, output = report["int8_io"]
    assert (entry["name"], entry["kind"], entry["dtype"]) == ("images", "input", "uint8")
    assert (output["name"], output["kind"], output["dtype"]) == ("probabilities", "output", "uint8")
    assert "input 'images' in uint8: scale" in " ".join(result.output.split())
    images = np.load(MODELS / "digits" / "1" / "samples.npz")["images"][:64]
    quantized = np.clip(np.rint(images / entry["scale"]) + entry["zero_point"], 0, 255).astype(np.uint8)
    (from_int8,) = _run(out / "model.ort", {"images": quantized})
    assert from_int8.dtype == np.uint8
    probabilities = (from_int8.astype(np.float32) - output["zero_point"]) * output["scale"]
    (fp32,) = _run(MODELS / "digits" / "1" / "model.onnx", {"images": images})
    assert np.mean(probabilities.argmax(1) == fp32.argmax(1)) >= 0.97
    assert np.abs(probabilities - fp32).max() < 0.1


def test_int8_io_needs_static_qdq(tmp_path: Path) -> None:
    args = [
        "--repository",
        MODELS,
        "--name",
        "mlp",
        "--mode",
        "dynamic",
        "--int8-io",
        "--output",
        tmp_path / "m.onnx",
    ]
    result = CliRunner().invoke(quantize, [*map(str, args), "--runs", "1"], catch_exceptions=False)
    assert result.exit_code == 1 and "--int8-io needs static quantization in the QDQ format" in result.output
