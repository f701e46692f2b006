"""The seed's seven architectures in all three frameworks, each through the real framework and the real
converter: 21 conversions, each within 1e-5 of the framework at batch sizes 1 and 7."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from modelport.converters import ConversionReport, convert

from tests.converters.conftest import ARCHITECTURES, ParityTable

pytestmark = pytest.mark.slow

PARITY_LIMIT = 1e-5


def _check_repository(report: ConversionReport, repository: Path, framework: str, kind: str) -> None:
    model_dir = repository / report.name
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "config.yaml"]
    assert sorted(p.name for p in (model_dir / "1").iterdir()) == ["conversion.json", "model.onnx"]
    document = json.loads((model_dir / "1" / "conversion.json").read_text())
    assert document["source"]["kind"] == kind
    assert len(document["source"]["sha256"]) == 64
    assert document["framework"]["name"] == framework
    assert document["onnx"]["opset"] == report.opset >= 15
    assert document["sizes"]["onnx_bytes"] == (model_dir / "1" / "model.onnx").stat().st_size
    checked = {(row["output"], row["batch_size"]) for row in document["verification"]["outputs"]}
    assert checked == {(spec.name, batch) for spec in report.outputs for batch in (1, 7)}
    assert all(row["passed"] for row in document["verification"]["outputs"])
    assert document["seconds"]["total"] > 0
    # No exporter stack traces (local paths) are shipped in the graph.
    graph = onnx.load(str(model_dir / "1" / "model.onnx")).graph
    assert not any(node.metadata_props or node.doc_string for node in graph.node)
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    assert config["max_batch_size"] == 64
    assert [tensor["name"] for tensor in config["inputs"]] == [spec.name for spec in report.inputs]
    assert [tensor["dims"] for tensor in config["inputs"]] == [list(spec.dims[1:]) for spec in report.inputs]
    assert config["outputs"][0]["datatype"] == "FP32"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_pytorch_export_program(architecture: str, tmp_path: Path, parity_table: ParityTable) -> None:
    import torch

    from tests.converters.torch_models import TORCH_ARCHITECTURES

    factory, input_name, row = TORCH_ARCHITECTURES[architecture]
    torch.manual_seed(0)
    module = factory().eval()
    example = torch.randn(2, *row)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    source = tmp_path / f"{architecture}.pt2"
    torch.export.save(program, str(source))

    report = convert(source, repository=tmp_path / "repo", name=architecture)

    parity_table.record("PyTorch (.pt2)", architecture, report.max_abs_error)
    assert report.max_abs_error <= PARITY_LIMIT
    assert [spec.name for spec in report.inputs] == [input_name]
    assert report.inputs[0].dims == (-1, *row)
    assert [spec.name for spec in report.outputs] == ["output"]
    # The ONNX file computes what the module computes on fresh data, not only on the converter's own samples.
    import onnxruntime

    batch = np.random.default_rng(5).standard_normal((3, *row)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(report.model_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = module(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(session.run(None, {input_name: batch})[0], expected, atol=PARITY_LIMIT)
    _check_repository(report, tmp_path / "repo", "torch", "torch.export")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_keras_file(architecture: str, tmp_path: Path, parity_table: ParityTable) -> None:
    import keras

    from tests.converters.keras_models import KERAS_ARCHITECTURES

    keras.utils.set_random_seed(0)
    model = KERAS_ARCHITECTURES[architecture]()
    source = tmp_path / f"{architecture}.keras"
    model.save(source)

    report = convert(source, repository=tmp_path / "repo", name=architecture)

    parity_table.record("Keras (.keras)", architecture, report.max_abs_error)
    assert report.max_abs_error <= PARITY_LIMIT
    assert [spec.name for spec in report.inputs] == [model.inputs[0].name]
    assert [spec.name for spec in report.outputs] == list(model.output_names)
    assert report.inputs[0].dims[0] == -1
    _check_repository(report, tmp_path / "repo", "keras", "keras")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tensorflow_saved_model(architecture: str, tmp_path: Path, parity_table: ParityTable) -> None:
    import keras

    from tests.converters.keras_models import KERAS_ARCHITECTURES, save_saved_model

    keras.utils.set_random_seed(1)
    model = KERAS_ARCHITECTURES[architecture]()
    source = tmp_path / f"{architecture}_savedmodel"
    save_saved_model(model, source)

    report = convert(source, repository=tmp_path / "repo", name=architecture)

    parity_table.record("TensorFlow (SavedModel)", architecture, report.max_abs_error)
    assert report.max_abs_error <= PARITY_LIMIT
    # The signature's keys name the ONNX inputs and outputs.
    assert [spec.name for spec in report.inputs] == [model.inputs[0].name]
    assert [spec.name for spec in report.outputs] == [model.output_names[0]]
    assert report.inputs[0].dims[0] == -1
    _check_repository(report, tmp_path / "repo", "tensorflow", "tensorflow-savedmodel")
