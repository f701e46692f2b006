"""``--explain`` and ``--auto-exclude`` on a model where one layer is known to be sensitive: a weight matrix
whose one outlier stretches its 8-bit scale so far that every other weight rounds to zero."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from modelport.converters.quantize.api import QuantizeOptions, quantize_model
from modelport.converters.quantize.cli import quantize
from onnx import helper, numpy_helper

SENSITIVE = "hidden/MatMul"
# The gate's bound here: random weights give a few near-tied logits, which any layer's rounding may flip.
BOUND = 0.05


def _sensitive_mlp(path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((16, 32)) * 0.3).astype(np.float32)
    w1[:, 3] = 0.0  # hidden unit 3 is always 0 after the ReLU ...
    w2 = (rng.standard_normal((32, 32)) * 0.05).astype(np.float32)
    # ... so this outlier weight on it changes nothing in FP32, but stretches the layer's per-tensor INT8
    # scale to 200/127: every other weight of the layer quantizes to 0. The activations stay ordinary.
    w2[3, 7] = 200.0
    w3 = (rng.standard_normal((32, 10)) * 3.0).astype(np.float32)  # decisive logits: few near-ties
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["h1"], name="input/MatMul"),
        helper.make_node("Relu", ["h1"], ["a1"], name="input/Relu"),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"], name=SENSITIVE),
        helper.make_node("Relu", ["h2"], ["a2"], name="hidden/Relu"),
        helper.make_node("MatMul", ["a2", "w3"], ["logits"], name="output/MatMul"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="output/Softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "sensitive",
        [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(w, name) for w, name in ((w1, "w1"), (w2, "w2"), (w3, "w3"))],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, Path]:
    repository = tmp_path / "repository"
    (repository / "sensitive" / "1").mkdir(parents=True)
    path = repository / "sensitive" / "1" / "model.onnx"
    _sensitive_mlp(path)
    samples = repository / "sensitive" / "1" / "samples.npz"
    np.savez(samples, features=np.random.default_rng(1).standard_normal((200, 16)).astype(np.float32))
    return path, samples


def test_explain_ranks_the_sensitive_layer_first(model: tuple[Path, Path], tmp_path: Path) -> None:
    path, samples = model
    (tmp_path / "work").mkdir()
    options = QuantizeOptions(
        mode="dynamic",
        validation=samples,
        explain=True,
        max_accuracy_drop=BOUND,
        ort_style=None,
        latency_runs=3,
    )
    result = quantize_model(path, tmp_path / "work", options)
    report = result.report
    assert not report.accuracy.passed, "quantized whole, the outlier layer breaks the classifier"
    ranked = [cost["node"] for cost in report.sensitivity]
    assert ranked[0] == SENSITIVE and set(ranked) == {"input/MatMul", SENSITIVE, "output/MatMul"}
    worst, *rest = report.sensitivity
    assert worst["drop"] > 0.3 and all(cost["drop"] <= BOUND for cost in rest)
    assert report.fp32_layers == []  # --explain alone changes nothing


def test_auto_exclude_keeps_only_the_sensitive_layer_in_fp32(
    model: tuple[Path, Path], tmp_path: Path
) -> None:
    path, samples = model
    (tmp_path / "work").mkdir()
    options = QuantizeOptions(
        mode="dynamic",
        validation=samples,
        auto_exclude=True,
        max_accuracy_drop=BOUND,
        ort_style=None,
        latency_runs=3,
    )
    result = quantize_model(path, tmp_path / "work", options)
    report = result.report
    assert report.accuracy.passed and report.fp32_layers == [SENSITIVE]
    ops = [n.op_type for n in onnx.load(str(result.model_path)).graph.node]
    assert ops.count("MatMul") == 1 and ops.count("MatMulInteger") == 2  # one layer FP32, two INT8
    assert any("kept 1 layer(s) in FP32" in note and "fully INT8" in note for note in report.notes)


def test_the_command_prints_the_table_and_publishes_the_passing_model(model: tuple[Path, Path]) -> None:
    path, _ = model
    repository = path.parents[2]
    args = [
        "--repository",
        repository,
        "--name",
        "sensitive",
        "--mode",
        "dynamic",
        "--explain",
        "--runs",
        "2",
    ]
    failed = CliRunner().invoke(quantize, [str(a) for a in args], catch_exceptions=False)
    assert failed.exit_code == 1 and "layers by quantization cost" in failed.output
    assert not (repository / "sensitive" / "2").exists()
    passed = CliRunner().invoke(quantize, [*map(str, args), "--auto-exclude"], catch_exceptions=False)
    assert passed.exit_code == 0, passed.output
    assert "(kept FP32)" in passed.output and (repository / "sensitive" / "2" / "model.onnx").is_file()
