"""``--input`` for sources that carry their own signature (``.pt2``, built Keras): consistent specs are
accepted (renaming inputs, fixing dynamic axes), conflicting ones refused naming the input and both specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from modelport.converters import convert
from modelport.converters.errors import InvalidOption
from modelport.converters.options import KerasOptions, TorchExportOptions
from modelport.converters.tensor_specs import parse_input_spec

from tests.converters.test_cli import assert_one_line_error, assert_untouched, run_cli
from tests.converters.torch_models import FEATURES

pytestmark = pytest.mark.slow


def _program(folder: Path, *, dynamic: bool) -> Path:
    import torch

    from tests.converters.torch_models import TORCH_ARCHITECTURES

    factory, _, row = TORCH_ARCHITECTURES["mlp"]
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    program = torch.export.export(factory().eval(), (torch.randn(2, *row),), dynamic_shapes=shapes)
    path = folder / ("dynamic.pt2" if dynamic else "static.pt2")
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="module")
def dynamic_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _program(tmp_path_factory.mktemp("programs"), dynamic=True)


@pytest.fixture(scope="module")
def static_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _program(tmp_path_factory.mktemp("programs"), dynamic=False)


def _served_inputs(model: Path) -> list[tuple[str, list[int | str | None]]]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [(value.name, list(value.shape)) for value in session.get_inputs()]


def _options(*specs: str) -> TorchExportOptions:
    return TorchExportOptions(inputs=tuple(parse_input_spec(spec) for spec in specs))


def test_consistent_input_on_a_program_is_accepted_and_renames(dynamic_program: Path, tmp_path: Path) -> None:
    result = run_cli(
        dynamic_program, "--name", "clf", "--repository", tmp_path, "--input", f"rows:float32:-1,{FEATURES}"
    )
    assert result.returncode == 0, result.stderr
    inputs = _served_inputs(tmp_path / "clf" / "1" / "model.onnx")
    assert [name for name, _ in inputs] == ["rows"]
    assert inputs[0][1][1] == FEATURES and not isinstance(inputs[0][1][0], int)
    # The renamed graph runs, and what it computes is what the source computes: the conversion verified it.
    session = ort.InferenceSession(
        str(tmp_path / "clf" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (scores,) = session.run(None, {"rows": np.ones((3, FEATURES), np.float32)})
    assert scores.shape[0] == 3


def test_input_may_fix_a_dynamic_axis(dynamic_program: Path, tmp_path: Path) -> None:
    report = convert(
        dynamic_program, repository=tmp_path, name="fixed", options=_options(f"x:float32:4,{FEATURES}")
    )
    assert _served_inputs(report.model_path) == [("x", [4, FEATURES])]
    assert report.max_batch_size == 0, "a fixed batch axis cannot be batched"
    assert all(error.passed for error in report.errors)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (f"features:int64:-1,{FEATURES}", "datatype int64 is not the source's float32"),
        (f"features:float32:-1,{FEATURES + 1}", f"axis 1 is {FEATURES} in the source, not {FEATURES + 1}"),
        (f"features:float32:-1,{FEATURES},1", "rank 3 is not the source's 2"),
    ],
)
def test_conflicting_input_is_refused_naming_both_specs(
    dynamic_program: Path, tmp_path: Path, spec: str, reason: str
) -> None:
    repository = tmp_path / "repo"
    result = run_cli(dynamic_program, "--name", "clf", "--repository", repository, "--input", spec)
    given = parse_input_spec(spec).describe()
    assert_one_line_error(
        result, "dynamic.pt2", f"--input {given}", "conflicts with the source's input", reason
    )
    assert_untouched(repository)


def test_input_cannot_free_a_fixed_axis(static_program: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InvalidOption, match="axis 0 is fixed at 2 in the source; export it with a dynamic axis"
    ):
        convert(static_program, repository=tmp_path, name="m", options=_options(f"x:float32:-1,{FEATURES}"))
    assert_untouched(tmp_path)


def test_input_count_must_match(dynamic_program: Path, tmp_path: Path) -> None:
    specs = (f"a:float32:-1,{FEATURES}", f"b:float32:-1,{FEATURES}")
    with pytest.raises(InvalidOption, match=r"2 --input given but the source has 1 input\(s\)"):
        convert(dynamic_program, repository=tmp_path, name="m", options=_options(*specs))


def test_input_name_may_not_reuse_a_graph_value(dynamic_program: Path, tmp_path: Path) -> None:
    import onnx

    report = convert(dynamic_program, repository=tmp_path / "plain", name="m")
    internal = onnx.load(str(report.model_path)).graph.node[0].output[0]
    with pytest.raises(InvalidOption, match=f"'{internal}' is already a value inside the model's graph"):
        convert(
            dynamic_program,
            repository=tmp_path,
            name="m",
            options=_options(f"{internal}:float32:-1,{FEATURES}"),
        )


def test_consistent_input_on_a_built_keras_model(tmp_path: Path) -> None:
    from tests.converters.keras_models import KERAS_ARCHITECTURES

    source = tmp_path / "mlp.keras"
    KERAS_ARCHITECTURES["mlp"]().save(source)
    options = KerasOptions(inputs=(parse_input_spec(f"rows:float32:-1,{FEATURES}"),))
    report = convert(source, repository=tmp_path / "repo", name="mlp", options=options)
    assert [name for name, _ in _served_inputs(report.model_path)] == ["rows"]
    assert all(error.passed for error in report.errors)
    conflicting = KerasOptions(inputs=(parse_input_spec(f"rows:float64:-1,{FEATURES}"),))
    with pytest.raises(InvalidOption, match="datatype float64 is not the source's float32"):
        convert(source, repository=tmp_path / "other", name="mlp", options=conflicting)
