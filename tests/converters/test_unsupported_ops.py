"""Operators without an ONNX translation: the known ones are rewritten (Keras's exact GELU), the others are
refused with what the user can do, and ``--custom-op`` supplies an ONNX function for them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from modelport.converters import UnsupportedOperator, convert
from modelport.converters.custom_ops import parse_custom_op
from modelport.converters.errors import ConversionError, InvalidOption
from modelport.converters.onnx_checks import check_graph
from modelport.converters.options import FactoryOptions, KerasOptions, VerifyOptions
from onnx import helper

from tests.converters.test_cli import assert_one_line_error, assert_untouched, run_cli

pytestmark = pytest.mark.slow


def test_keras_exact_gelu_converts_through_the_erfc_rewrite(tmp_path: Path) -> None:
    report = convert("tests.converters.factories:keras_exact_and_tanh_gelu", repository=tmp_path, name="ffn")
    assert all(error.passed for error in report.errors)
    assert max(error.max_abs_error for error in report.errors) < 1e-5
    assert any("'Erfc'" in note and "1 - Erf(x)" in note for note in report.notes), report.notes
    ops = {node.op_type for node in onnx.load(str(report.model_path)).graph.node}
    assert "Erf" in ops and "Erfc" not in ops


def test_expm1_and_xlogy_are_rewritten_and_match_tensorflow_at_zero(tmp_path: Path) -> None:
    rows = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
    samples = tmp_path / "samples.npz"
    np.savez(samples, features=rows)
    report = convert(
        "tests.converters.factories:keras_expm1_and_xlogy",
        repository=tmp_path / "repo",
        name="special",
        verification=VerifyOptions(samples=samples),
    )
    assert all(error.passed for error in report.errors)
    assert {note.split("'")[1] for note in report.notes if "rewritten" in note} == {"Expm1", "Xlogy"}


def test_below_the_rewrite_opset_the_error_says_which_opset(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOperator, match="modelport rewrites it from opset 15: pass --opset 15"):
        convert(
            "tests.converters.factories:keras_exact_and_tanh_gelu",
            repository=tmp_path,
            name="ffn",
            options=FactoryOptions(opset=14),
        )
    assert_untouched(tmp_path)


def test_an_op_newer_than_the_graph_opset_names_the_opset() -> None:
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], name="block/act/Gelu")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(
        UnsupportedOperator, match=r"'Gelu' in layer 'block/act' exists in ONNX only from opset 20"
    ):
        check_graph(model, "m.onnx")


def test_untranslatable_tensorflow_op_suggests_custom_op(tmp_path: Path) -> None:
    result = run_cli("tests.converters.factories:keras_special_function", "--repository", tmp_path / "repo")
    assert_one_line_error(result, "'BesselI0e'", "--custom-op BesselI0e=module:function")
    assert_untouched(tmp_path / "repo")


def test_custom_op_supplies_a_torch_operator_translation(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    result = run_cli(
        "tests.converters.custom_op_model:with_custom_operator",
        "--repository",
        repository,
        "--input",
        "input:float32:-1,4",
        "--custom-op",
        "modelport_test::wiggle=tests.converters.custom_functions:wiggle",
    )
    assert result.returncode == 0, result.stderr
    version = repository / "with_custom_operator" / "1"
    report = json.loads((version / "conversion.json").read_text())
    checked = report["verification"]["outputs"]
    assert checked and all(output["passed"] for output in checked)
    model = onnx.load(str(version / "model.onnx"))
    used = {node.op_type for node in model.graph.node} | {n.op_type for f in model.functions for n in f.node}
    assert "Sin" in used, used


def test_custom_op_for_an_onnx_level_op_wins_over_the_rewrite(tmp_path: Path) -> None:
    report = convert(
        "tests.converters.factories:keras_expm1_and_xlogy",
        repository=tmp_path,
        name="special",
        custom_ops=[parse_custom_op("Expm1=tests.converters.custom_functions:expm1_function")],
    )
    assert all(error.passed for error in report.errors)
    model = onnx.load(str(report.model_path))
    assert [(f.domain, f.name) for f in model.functions] == [("user.functions", "UserExpm1")]
    assert any("implemented by --custom-op" in note for note in report.notes)
    assert not any("'Expm1'" in note and "rewritten" in note for note in report.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Expm1", "expected NAME=module:function"),
        ("Expm1=tests.converters.custom_functions:absent", "has no attribute 'absent'"),
        ("Expm1=tests.converters.factories:keras_mlp", "not an ONNX function"),
    ],
)
def test_bad_custom_op_specs(text: str, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        parse_custom_op(text)


def test_custom_op_for_an_op_not_in_the_graph_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match="has no 'Lgamma' node to implement"):
        convert(
            "tests.converters.factories:keras_mlp",
            repository=tmp_path,
            name="m",
            custom_ops=[parse_custom_op("Lgamma=tests.converters.custom_functions:expm1_function")],
        )
    assert_untouched(tmp_path)


def test_torch_custom_op_on_a_keras_source_is_refused(tmp_path: Path) -> None:
    wiggle = [parse_custom_op("modelport_test::wiggle=tests.converters.custom_functions:wiggle")]
    with pytest.raises(InvalidOption, match="returned a Keras model; --custom-op modelport_test::wiggle"):
        convert("tests.converters.factories:keras_mlp", repository=tmp_path, name="m", custom_ops=wiggle)
    from tests.converters.factories import keras_mlp

    source = tmp_path / "mlp.keras"
    keras_mlp().save(source)
    with pytest.raises(InvalidOption, match=r"names a torch operator, which only torch\.export"):
        convert(source, repository=tmp_path / "r", name="m", options=KerasOptions(), custom_ops=wiggle)
