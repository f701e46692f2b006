"""The committed model repository ``models/`` is what the recipes promise.

Every model loads in ONNX Runtime, its ``config.yaml`` describes the graph's real inputs and outputs, its
labels match the output width, and on held-out data regenerated with the recipes' seeds each model still
reaches its recipe's accuracy through ONNX Runtime. No training happens here (``make models`` trains).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import yaml

from examples import datasets, sentences
from examples.build_models import RECIPES
from examples.vocabulary import Vocabulary

MODELS = Path(__file__).resolve().parents[2] / "models"
ONNX_TYPES = {"tensor(float)": "FP32", "tensor(int32)": "INT32", "tensor(int64)": "INT64"}
MAX_ONNX_BYTES = 2 * 1024 * 1024


def _session(name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        str(MODELS / name / "1" / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )


def _config(name: str) -> dict[str, Any]:
    config = yaml.safe_load((MODELS / name / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(config, dict), f"{name}/config.yaml is not a mapping"
    return config


def _run(name: str, inputs: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """The single output of a single-input model."""
    session = _session(name)
    (output,) = session.run(None, {session.get_inputs()[0].name: inputs})
    return np.asarray(output)


def test_the_repository_holds_exactly_the_recipes_models() -> None:
    present = sorted(path.name for path in MODELS.iterdir() if path.is_dir())
    assert present == sorted(RECIPES)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_config_matches_the_graph(name: str) -> None:
    session, config = _session(name), _config(name)
    max_batch_size = config.get("max_batch_size", 0)
    assert max_batch_size > 0, f"{name}: the examples are batchable"
    for kind, graph_tensors in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        declared = config[kind]
        assert [tensor["name"] for tensor in declared] == [tensor.name for tensor in graph_tensors], kind
        for tensor, graph in zip(declared, graph_tensors, strict=True):
            assert tensor["datatype"] == ONNX_TYPES[graph.type], f"{name}: {kind} {graph.name} datatype"
            batch, *row = graph.shape
            assert not isinstance(batch, int), f"{name}: {graph.name} has a fixed batch dimension {batch}"
            assert tensor["dims"] == [dim if isinstance(dim, int) else -1 for dim in row], graph.name


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_files_beside_the_model(name: str) -> None:
    directory = MODELS / name
    assert sorted(path.name for path in directory.iterdir() if path.is_dir()) == ["1"]
    assert (directory / "1" / "model.onnx").stat().st_size < MAX_ONNX_BYTES
    report = json.loads((directory / "1" / "conversion.json").read_text(encoding="utf-8"))
    assert isinstance(report, dict) and report, f"{name}: empty conversion report"
    for output in _config(name)["outputs"]:
        if "labels" in output:
            labels = (directory / output["labels"]).read_text(encoding="utf-8").splitlines()
            assert len(labels) == output["dims"][-1], f"{name}: one label per class of {output['name']}"


def test_digits_cnn_accuracy() -> None:
    split = datasets.digits()
    probabilities = _run("digits", split.validation_x)
    assert probabilities.shape == (len(split.validation_x), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == split.validation_y) >= 0.95


def test_mlp_accuracy() -> None:
    split = datasets.digits()
    probabilities = _run("mlp", split.validation_x.reshape(len(split.validation_x), 64))
    assert np.mean(probabilities.argmax(axis=1) == split.validation_y) >= 0.95


def test_mlp_is_the_benchmarks_shape() -> None:
    config = _config("mlp")
    assert config["inputs"][0]["dims"] == [64] and config["outputs"][0]["dims"] == [10]


def test_denoiser_reduces_the_noise() -> None:
    clean = datasets.digits().validation_x
    noisy = datasets.add_noise(clean, seed=datasets.NOISE_SEED)
    denoised = _run("denoiser", noisy)
    assert denoised.shape == clean.shape
    assert np.mean((denoised - clean) ** 2) < 0.6 * np.mean((noisy - clean) ** 2)


def test_sentiment_accuracy_with_the_saved_vocabulary() -> None:
    vocabulary = Vocabulary.load(MODELS / "sentiment" / "vocabulary.json")
    validation = sentences.generate(sentences.VALIDATION_SIZE, seed=sentences.VALIDATION_SEED)
    probabilities = _run("sentiment", vocabulary.encode(validation.sentences))
    assert np.mean(probabilities.argmax(axis=1) == validation.labels) >= 0.95


def test_sentiment_reads_new_sentences() -> None:
    vocabulary = Vocabulary.load(MODELS / "sentiment" / "vocabulary.json")
    labels = (MODELS / "sentiment" / "labels.txt").read_text(encoding="utf-8").split()
    written = [
        "The hotel was absolutely wonderful!",
        "The waiter was rude.",
        "I would not recommend this phone.",
    ]
    predicted = _run("sentiment", vocabulary.encode(written)).argmax(axis=1)
    assert [labels[index] for index in predicted] == ["positive", "negative", "negative"]


def test_waveform_accuracy() -> None:
    signals, labels = datasets.waveforms(
        datasets.WAVEFORM_VALIDATION_SIZE, seed=datasets.WAVEFORM_VALIDATION_SEED
    )
    assert np.mean(_run("waveform", signals).argmax(axis=1) == labels) >= 0.88
