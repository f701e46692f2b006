"""Samples travel with the model: a conversion keeps its verification samples (bounded), the example models
ship real held-out rows, and quantize / export-mobile use them by default; without any real data the gate says
that it judged generated inputs and gives the agreement's confidence interval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner, Result
from modelport.converters.onnx_checks import graph_signature
from modelport.converters.quantize.cli import export_mobile, quantize
from modelport.converters.quantize.gate import wilson_interval
from modelport.converters.samples import KEPT_SAMPLES_FILE, kept_samples, load_npz

from examples import datasets
from examples.publish import KEPT_ROWS

MODELS = Path(__file__).resolve().parents[3] / "models"


def _invoke(command: object, *args: str | Path | int) -> Result:
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)  # type: ignore[arg-type]


EXAMPLES = sorted(p.name for p in MODELS.iterdir() if (p / "1" / "model.onnx").is_file())


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_model_ships_its_held_out_rows(name: str) -> None:
    version = MODELS / name / "1"
    inputs, _ = graph_signature(onnx.load(str(version / "model.onnx")))
    samples = load_npz(version / KEPT_SAMPLES_FILE, inputs)
    assert samples.count == KEPT_ROWS
    assert (version / KEPT_SAMPLES_FILE).stat().st_size < 64 * 1024


def test_the_mlp_samples_are_real_digits() -> None:
    rows = np.load(MODELS / "mlp" / "1" / KEPT_SAMPLES_FILE)["features"]
    split = datasets.digits()
    real = {row.tobytes() for row in split.validation_x.reshape(len(split.validation_x), -1)}
    assert all(row.tobytes() in real for row in rows)


def test_export_mobile_on_the_example_mlp_passes_at_the_defaults(tmp_path: Path) -> None:
    # The case: at the defaults the gate once judged 64 random inputs and failed on 2 of them.
    out = tmp_path / "mlp-mobile"
    result = _invoke(
        export_mobile,
        "--repository",
        MODELS,
        "--name",
        "mlp",
        "--quantize",
        "dynamic",
        "--output",
        out,
        "--runs",
        3,
    )
    assert result.exit_code == 0, result.output
    assert f"{KEPT_SAMPLES_FILE} (kept by the conversion)" in result.output
    accuracy = json.loads((out / "mobile_export.json").read_text())["accuracy"]
    assert accuracy["samples"] == KEPT_ROWS and accuracy["generated"] is False
    assert KEPT_SAMPLES_FILE in accuracy["validation_source"]
    assert accuracy["passed"] is True and accuracy["outputs"][0]["top1_agreement"] >= 0.99


def test_without_real_data_the_gate_says_so_with_an_interval(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(MODELS / "mlp", repository / "mlp")
    (repository / "mlp" / "1" / KEPT_SAMPLES_FILE).unlink()
    result = _invoke(
        quantize, "--repository", repository, "--name", "mlp", "--mode", "dynamic", "--max-accuracy-drop", "1"
    )
    assert result.exit_code == 0, result.output
    assert "judged on 64 generated inputs, not real data" in result.output
    assert "'probabilities' top-1 agreement" in " ".join(result.output.split())
    assert "95% CI" in " ".join(result.output.split())
    report = json.loads((repository / "mlp" / "2" / "quantization.json").read_text())
    low, high = report["accuracy"]["top1_agreement_95ci"]["probabilities"]
    assert low <= report["accuracy"]["outputs"][0]["top1_agreement"] <= high
    assert report["accuracy"]["generated"] is True


def test_wilson_interval() -> None:
    low, high = wilson_interval(62 / 64, 64)
    assert 0.88 < low < 0.90 and 0.99 < high < 0.995  # 2 of 64 changed: the drop could be under 1 % or ~11 %
    assert wilson_interval(1.0, 64)[1] == 1.0 and wilson_interval(1.0, 64)[0] > 0.94
    assert wilson_interval(0.0, 10)[0] == 0.0


def test_kept_samples_are_bounded(tmp_path: Path) -> None:
    from modelport.converters.tensor_specs import parse_input_spec

    path = tmp_path / "big.npz"
    np.savez(path, x=np.ones((1000, 64), np.float32))  # 256 kB uncompressed
    spec = (parse_input_spec("x:float32:-1,64"),)
    content, rows = kept_samples(path, spec, limit=64 * 1024)
    assert rows == 256
    kept = tmp_path / "kept.npz"
    kept.write_bytes(content)
    np.testing.assert_array_equal(np.load(kept)["x"], np.ones((256, 64), np.float32))
    assert kept_samples(path, spec, limit=1)[1] == 1  # always at least one row


@pytest.mark.slow
def test_a_conversion_keeps_its_verification_samples(tmp_path: Path) -> None:
    from modelport.converters import VerifyOptions, convert
    from modelport.converters.options import FactoryOptions
    from modelport.converters.tensor_specs import parse_input_spec

    rows = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    np.savez(tmp_path / "rows.npz", input=rows)
    report = convert(
        "tests.converters.factories:tiny_mlp",
        repository=tmp_path / "repo",
        name="m",
        options=FactoryOptions(inputs=(parse_input_spec("input:float32:-1,4"),)),
        verification=VerifyOptions(samples=tmp_path / "rows.npz"),
    )
    kept = report.model_path.parent / KEPT_SAMPLES_FILE
    np.testing.assert_array_equal(np.load(kept)["input"], rows)
    assert any(f"kept the first 40 rows of {tmp_path / 'rows.npz'}" in note for note in report.notes)
    generated = convert(
        "tests.converters.factories:tiny_mlp",
        repository=tmp_path / "repo",
        name="m",
        options=FactoryOptions(inputs=(parse_input_spec("input:float32:-1,4"),)),
    )
    assert not (generated.model_path.parent / KEPT_SAMPLES_FILE).exists()  # generated inputs are not kept
