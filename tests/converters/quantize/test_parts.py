"""The quantizer's parts on tiny real ONNX models built with onnx.helper: sample layouts, generated samples,
the gate's verdicts, and the debug-info minifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from modelport.converters.errors import InvalidSamples
from modelport.converters.quantize.api import QuantizeOptions, quantize_model
from modelport.converters.quantize.gate import compare_outputs
from modelport.converters.quantize.minify import minify
from modelport.converters.quantize.sample_choice import generate_samples, model_inputs
from modelport.converters.samples import load_npz
from onnx import TensorProto, helper, numpy_helper

Array = np.ndarray[Any, Any]
RNG = np.random.default_rng(0)


def _save(tmp_path: Path, graph: onnx.GraphProto, name: str = "model.onnx") -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _fixed_batch_matmul(tmp_path: Path) -> Path:
    """x FP32 [1, 16] (batch fixed at 1) -> MatMul -> Relu -> MatMul -> y [1, 4]."""
    w1 = numpy_helper.from_array(RNG.normal(size=(16, 32)).astype(np.float32), "a_rather_long_weight_name_1")
    w2 = numpy_helper.from_array(RNG.normal(size=(32, 4)).astype(np.float32), "a_rather_long_weight_name_2")
    nodes = [
        helper.make_node("MatMul", ["x", w1.name], ["hidden_activation_before_relu"], name="first_matmul"),
        helper.make_node("Relu", ["hidden_activation_before_relu"], ["hidden_activation"], name="relu"),
        helper.make_node("MatMul", ["hidden_activation", w2.name], ["y"], name="second_matmul"),
    ]
    nodes[0].metadata_props.add(key="pkg.torch.onnx.stack_trace", value="File 'model.py', line 1" * 20)
    graph = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w1, w2],
    )
    return _save(tmp_path, graph)


def _embedding(tmp_path: Path) -> Path:
    """ids INT64 [batch, 5] -> Gather(table [50, 8]) -> ReduceMean over the sequence -> MatMul -> scores."""
    table = numpy_helper.from_array(RNG.normal(size=(50, 8)).astype(np.float32), "table")
    head = numpy_helper.from_array(RNG.normal(size=(8, 3)).astype(np.float32), "head")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["embedded"]),
            helper.make_node("ReduceMean", ["embedded", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "head"], ["scores"]),
        ],
        "embedding",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 5])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
        [table, head, axes],
    )
    return _save(tmp_path, graph)


def _run(path: Path, feed: dict[str, Array]) -> Array:
    return np.asarray(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0])


def test_fixed_batch_models_take_rows_one_at_a_time(tmp_path: Path) -> None:
    path = _fixed_batch_matmul(tmp_path)
    specs = model_inputs(onnx.load(str(path))).specs
    rows = RNG.random((10, 16), dtype=np.float32)
    np.savez(tmp_path / "rows.npz", x=rows)  # [N, 16]: one row per sample
    np.savez(tmp_path / "stacked.npz", x=rows[:, None, :])  # [N, 1, 16]: one batch per sample
    for name in ("rows.npz", "stacked.npz"):
        samples = load_npz(tmp_path / name, specs, per_sample=True)
        assert samples.count == 10 and samples.stacked
        assert [feed["x"].shape for feed in samples.batches(32)] == [(1, 16)] * 10
    work = tmp_path / "work"
    work.mkdir()
    result = quantize_model(
        path, work, QuantizeOptions(mode="dynamic", validation=tmp_path / "rows.npz", latency_runs=2)
    )
    assert result.report.accuracy.samples == 10
    assert result.report.nodes_converted == {"MatMul": 2}
    expected = np.stack([_run(path, {"x": row[None]}) for row in rows])
    quantized = np.stack([_run(result.model_path, {"x": row[None]}) for row in rows])
    assert np.abs(quantized - expected).max() < 0.05 * np.abs(expected).max()
    assert result.report.accuracy.outputs[0].max_abs_error == pytest.approx(
        np.abs(quantized - expected).max()
    )


def test_generated_ids_stay_inside_the_embedding(tmp_path: Path) -> None:
    path = _embedding(tmp_path)
    specs = model_inputs(onnx.load(str(path)))
    assert specs.int_bounds == {"ids": 50}
    samples = generate_samples(specs, 200, seed=3, purpose="test")
    ids = samples.arrays["ids"]
    assert ids.shape == (200, 5) and ids.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < 50 and len(np.unique(ids)) > 40
    work = tmp_path / "work"
    work.mkdir()
    report = quantize_model(path, work, QuantizeOptions(mode="dynamic", latency_runs=2)).report
    assert "64 generated samples" in report.accuracy.validation_source
    assert report.nodes_converted.get("Gather") == 1  # the table is stored as 8-bit


def test_wrong_dtype_is_named(tmp_path: Path) -> None:
    path = _embedding(tmp_path)
    specs = model_inputs(onnx.load(str(path))).specs
    np.savez(tmp_path / "floats.npz", ids=RNG.random((4, 5)))
    with pytest.raises(
        InvalidSamples, match=r"floats\.npz: array 'ids' has dtype float64; the model's input is int64"
    ):
        load_npz(tmp_path / "floats.npz", specs, per_sample=True)


def test_gate_verdicts(tmp_path: Path) -> None:
    path = _embedding(tmp_path)
    samples = generate_samples(model_inputs(onnx.load(str(path))), 4, seed=0, purpose="gate")
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]], np.float32)
    flipped = probabilities.copy()
    flipped[3] = [0.4, 0.5, 0.1]  # one of four decisions changes
    report = compare_outputs({"p": probabilities}, {"p": flipped}, samples=samples, max_accuracy_drop=0.3)
    assert report.outputs[0].top1_agreement == 0.75 and report.drop == pytest.approx(0.25) and report.passed
    strict = compare_outputs({"p": probabilities}, {"p": flipped}, samples=samples, max_accuracy_drop=0.2)
    assert not strict.passed and "accuracy drop 0.25 exceeds --max-accuracy-drop 0.2" in strict.failures[0]
    broken = compare_outputs(
        {"p": probabilities},
        {"p": np.full_like(probabilities, np.nan)},
        samples=samples,
        max_accuracy_drop=1.0,
    )
    assert not broken.passed  # NaN never passes, whatever the bound
    values = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)  # a regression output: normalized error
    shifted = compare_outputs({"v": values}, {"v": values + 0.1}, samples=samples, max_accuracy_drop=1.0)
    assert shifted.outputs[0].top1_agreement is None
    assert shifted.drop == pytest.approx(0.1 / values.std(), rel=1e-4)


def test_minify_keeps_the_interface_and_the_numbers(tmp_path: Path) -> None:
    path = _fixed_batch_matmul(tmp_path)
    model = onnx.load(str(path))
    saved = minify(model)
    assert saved > 0
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["y"]
    internal = {n for node in model.graph.node for n in [*node.input, *node.output]} - {"x", "y"}
    assert all(len(n) <= 3 for n in internal)
    assert not any(node.metadata_props for node in model.graph.node)
    onnx.save(model, str(tmp_path / "small.onnx"))
    x = RNG.random((1, 16), dtype=np.float32)
    np.testing.assert_array_equal(_run(tmp_path / "small.onnx", {"x": x}), _run(path, {"x": x}))


def test_minify_leaves_names_alone_in_graphs_with_subgraphs(tmp_path: Path) -> None:
    branch = helper.make_graph(
        [helper.make_node("Identity", ["outer_value_used_inside"], ["branch_out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [2])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["outer_value_used_inside"], doc_string="a doc string"),
            helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch),
        ],
        "nested",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = onnx.load(str(_save(tmp_path, graph)))
    minify(model)
    assert model.graph.node[0].output[0] == "outer_value_used_inside"
    assert model.graph.node[0].doc_string == ""
