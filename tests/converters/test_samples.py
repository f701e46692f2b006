"""The one samples module that the parity check and quantization share: ``.npz`` layouts, the complaints
that name the file and key, generated draws, and how report files are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelport.converters.errors import CorruptSource, InvalidOption, InvalidSamples, SourceNotFound
from modelport.converters.report import json_text
from modelport.converters.samples import DYNAMIC_DIM_SIZE, generate, load_npz
from modelport.converters.tensor_specs import TensorSpec, parse_input_spec

FEATURES = parse_input_spec("features:float32:-1,12")
TOKENS = parse_input_spec("tokens:int64:-1,-1")


def test_rows_are_the_batch_axis_for_the_parity_check(tmp_path: Path) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, features=np.ones((5, 12), np.float64), tokens=np.zeros((5, 7), np.int32))
    samples = load_npz(path, [FEATURES, TOKENS])
    assert samples.count == 5 and not samples.stacked and samples.source == str(path)
    assert samples.arrays["features"].dtype == np.float32 and samples.arrays["tokens"].dtype == np.int64
    assert [feed["features"].shape for feed in samples.batches(2)] == [(2, 12), (2, 12), (1, 12)]


def test_the_complaints_name_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, features=np.ones((5, 1, 12), np.float32))
    with pytest.raises(
        InvalidSamples, match=r"bad\.npz: array 'features' has shape \[5, 1, 12\].*batch axis"
    ):
        load_npz(path, [FEATURES])  # an extra axis is for quantization's per-sample layout only
    assert load_npz(path, [parse_input_spec("features:float32:1,12")], per_sample=True).stacked
    np.savez(path, features=np.ones((5, 11), np.float32))
    with pytest.raises(InvalidSamples, match=r"size 11 on axis 1; the model's input needs \[\?, 12\]"):
        load_npz(path, [FEATURES])
    np.savez(path, features=np.ones((5, 12), np.float32), tokens=np.ones((4, 3), np.int64))
    with pytest.raises(InvalidSamples, match=r"different numbers of samples.*'features': 5, 'tokens': 4"):
        load_npz(path, [FEATURES, TOKENS])
    np.savez(path, tokens=np.ones((4, 3), np.float32))
    with pytest.raises(InvalidSamples, match="array 'tokens' has dtype float32; the model's input is int64"):
        load_npz(path, [TOKENS])
    with pytest.raises(InvalidSamples, match=r"no array named 'features' \(the model's input\); .*tokens"):
        load_npz(path, [FEATURES])
    np.savez(path, features=np.ones((0, 12), np.float32))
    with pytest.raises(InvalidSamples, match="hold no samples"):
        load_npz(path, [FEATURES])
    with pytest.raises(SourceNotFound, match=r"missing\.npz: no such samples file"):
        load_npz(tmp_path / "missing.npz", [FEATURES])
    (tmp_path / "text.npz").write_text("not a zip archive")
    with pytest.raises(CorruptSource, match=r"text\.npz: not a readable \.npz archive"):
        load_npz(tmp_path / "text.npz", [FEATURES])
    assert issubclass(InvalidSamples, InvalidOption)  # the conversion CLI's exit code and one-line message


def test_rows_of_a_model_whose_batch_is_fixed_at_one_are_fed_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, x=np.arange(30, dtype=np.float32).reshape(10, 3))
    samples = load_npz(path, [TensorSpec("x", "float32", (1, 3))], per_sample=True)
    assert samples.stacked and samples.count == 10
    assert [feed["x"].shape for feed in samples.batches(4)] == [(1, 3)] * 10
    np.savez(path, x=np.ones((10, 3), np.float32))
    with pytest.raises(InvalidSamples, match="batch size is fixed at 4; give one sample per row"):
        load_npz(path, [TensorSpec("x", "float32", (4, 3))], per_sample=True)


def test_generated_draws_follow_the_spec_and_the_seed() -> None:
    specs = [FEATURES, TOKENS, TensorSpec("mask", "bool", (-1, 3))]
    normal = generate(specs, batch=64, rng=np.random.default_rng(1), int_high={"tokens": 50})
    assert normal["features"].shape == (64, 12) and normal["features"].dtype == np.float32
    assert normal["features"].min() < 0  # standard normal for the parity check
    assert normal["tokens"].shape == (64, DYNAMIC_DIM_SIZE) and normal["tokens"].max() < 50
    assert len(np.unique(normal["tokens"])) > 40 and normal["mask"].dtype == np.bool_
    again = generate(specs, batch=64, rng=np.random.default_rng(1), int_high={"tokens": 50})
    np.testing.assert_array_equal(normal["features"], again["features"])
    uniform = generate(specs, batch=2, rng=np.random.default_rng(1), floats="uniform", stack=30)
    assert uniform["features"].shape == (30, 2, 12)
    assert uniform["features"].min() >= 0 and uniform["features"].max() < 1  # calibration draws
    with pytest.raises(InvalidSamples, match="cannot generate samples for input 'text'"):
        generate([TensorSpec("text", "object", (-1,))], batch=1, rng=np.random.default_rng(0))


def test_report_files_are_strict_json() -> None:
    text = json_text({"drop": float("inf"), "outputs": [{"error": float("nan"), "rows": 3}], "ok": 0.5})
    assert text.endswith("}\n")
    assert json.loads(text) == {"drop": "inf", "outputs": [{"error": "nan", "rows": 3}], "ok": 0.5}
