"""The framework-free parts of the converters: ``--input`` parsing, source detection, version choice, the
config document and the error measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from modelport.converters import InvalidOption, SourceNotFound, TensorSpec, UnknownFormat, parse_input_spec
from modelport.converters.options import VerifyOptions
from modelport.converters.repository_writer import config_document, plan_placement
from modelport.converters.sources import SourceKind, default_options, detect_kind
from modelport.converters.verify import batch_sizes_for, compare


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("features:float32:-1,12", TensorSpec("features", "float32", (-1, 12))),
        ("tokens:INT64:-1,-1", TensorSpec("tokens", "int64", (-1, -1))),
        ("image:FP16:1,3,8,8", TensorSpec("image", "float16", (1, 3, 8, 8))),
        ("x:float:4", TensorSpec("x", "float32", (4,))),
    ],
)
def test_input_spec_parses(text: str, expected: TensorSpec) -> None:
    assert parse_input_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features", "is not NAME:DTYPE:DIMS"),
        (":float32:1", "is not NAME:DTYPE:DIMS"),
        ("x:quaternion:1", "unknown datatype 'quaternion'"),
        ("x:float32:a,2", "dimension 'a' is not an integer"),
        ("x:float32:0,2", "must be positive or -1"),
        ("x:float32:", "no dimensions"),
    ],
)
def test_input_spec_errors_name_the_option(text: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        parse_input_spec(text)


def test_detects_source_kinds(tmp_path: Path) -> None:
    for name, kind in [
        ("m.pt2", SourceKind.TORCH_EXPORT),
        ("m.pt", SourceKind.TORCHSCRIPT),
        ("m.keras", SourceKind.KERAS),
        ("m.h5", SourceKind.KERAS),
    ]:
        (tmp_path / name).write_bytes(b"x")
        assert detect_kind(str(tmp_path / name)) is kind
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"x")
    assert detect_kind(str(tmp_path / "saved")) is SourceKind.SAVED_MODEL
    assert detect_kind("my_package.models:build_model") is SourceKind.FACTORY
    with pytest.raises(SourceNotFound, match="no such file"):
        detect_kind(str(tmp_path / "absent.pt2"))
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(UnknownFormat, match="already ONNX"):
        detect_kind(str(tmp_path / "m.onnx"))


def test_options_that_do_not_apply_are_refused() -> None:
    spec = (parse_input_spec("x:float32:-1,2"),)
    # A program's inputs are its own: --input is kept, to be checked against them (test_signature_match).
    assert default_options(SourceKind.TORCH_EXPORT, source="m.pt2", inputs=spec).inputs == spec
    with pytest.raises(InvalidOption, match="--weights applies only"):
        default_options(SourceKind.KERAS, source="m.keras", weights=Path("w.h5"))
    with pytest.raises(InvalidOption, match="is a keras model"):
        default_options(SourceKind.KERAS, source="m.keras", framework="torch")


def test_version_is_one_above_the_highest(tmp_path: Path) -> None:
    assert plan_placement(tmp_path, "m", None).version == 1
    for version in ("1", "3", "notes"):
        (tmp_path / "m" / version).mkdir(parents=True)
    assert plan_placement(tmp_path, "m", None).version == 4
    assert plan_placement(tmp_path, "m", 2).version == 2
    with pytest.raises(InvalidOption, match="not a folder name"):
        plan_placement(tmp_path, "../escape", None)


def test_config_document_uses_per_row_dims_when_batching() -> None:
    inputs = (TensorSpec("tokens", "int64", (-1, 20)),)
    outputs = (TensorSpec("scores", "float32", (-1, 2)),)
    assert config_document(inputs, outputs, 16) == {
        "max_batch_size": 16,
        "dynamic_batching": {"max_queue_delay_us": 0},
        "inputs": [{"name": "tokens", "datatype": "INT64", "dims": [20]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "dims": [2]}],
    }
    unbatched = config_document((TensorSpec("x", "float32", (3,)),), outputs[:0], 0)
    assert "dynamic_batching" not in unbatched


def test_error_measure_and_tolerance_rule() -> None:
    options = VerifyOptions(atol=1e-4, rtol=1e-3)
    reference = np.array([1.0, 0.0, -2.0], dtype=np.float32)
    close = compare("y", 1, reference + np.array([5e-5, 5e-5, 1e-3], dtype=np.float32), reference, options)
    assert close.passed
    assert close.max_abs_error == pytest.approx(1e-3, rel=1e-3)
    assert close.max_rel_error == pytest.approx(5e-4, rel=1e-2)
    far = compare("y", 1, reference + np.float32(0.01), reference, options)
    assert not far.passed
    assert not compare("y", 1, np.zeros(2, np.float32), np.zeros(3, np.float32), options).passed


def test_batch_sizes_follow_the_batch_axis() -> None:
    dynamic = (TensorSpec("x", "float32", (-1, 4)),)
    assert batch_sizes_for(dynamic, VerifyOptions(), None) == (1, 7)
    assert batch_sizes_for(dynamic, VerifyOptions(), 3) == (1, 3)
    assert batch_sizes_for((TensorSpec("x", "float32", (5, 4)),), VerifyOptions(), None) == (5,)


def test_importing_the_converters_imports_no_framework() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, modelport.converters, modelport.converters.cli; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'tf2onnx', 'modelport.server.app') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_version_that_appears_during_the_conversion_is_not_overwritten(tmp_path: Path) -> None:
    from modelport.converters import RepositoryConflict
    from modelport.converters.repository_writer import publish

    placement = plan_placement(tmp_path, "m", None)
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"someone else's")
    with pytest.raises(RepositoryConflict, match="appeared while converting"):
        publish(placement, model_bytes=b"ours", report={}, config={"max_batch_size": 0})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == b"someone else's"

    fresh = plan_placement(tmp_path, "n", None)
    assert publish(fresh, model_bytes=b"ours", report={"k": 1}, config={"max_batch_size": 0})
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["1", "config.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "n"]
