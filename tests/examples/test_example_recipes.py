"""The recipes' model-building pieces, at reduced size: they build, train a little, and match what is served.

The names and per-row shapes each framework model produces are the ones in the committed ``config.yaml``, so
a recipe edited without ``make models`` (or the reverse) fails here. Nothing is converted in this file.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from examples import datasets, sentences
from examples.vocabulary import Vocabulary

MODELS = Path(__file__).resolve().parents[2] / "models"


def _signature(name: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per-row dims of the served model's inputs and outputs, by name."""
    config: dict[str, Any] = yaml.safe_load((MODELS / name / "config.yaml").read_text(encoding="utf-8"))
    return (
        {tensor["name"]: tensor["dims"] for tensor in config["inputs"]},
        {tensor["name"]: tensor["dims"] for tensor in config["outputs"]},
    )


@pytest.mark.parametrize("name", ["digits", "mlp", "denoiser"])
def test_torch_modules_produce_the_served_signature(name: str) -> None:
    import torch

    from examples.denoiser_torch import DenoisingAutoencoder
    from examples.digits_torch import DigitsCNN
    from examples.mlp_torch import DigitsMLP

    module = {"digits": DigitsCNN, "mlp": DigitsMLP, "denoiser": DenoisingAutoencoder}[name]().eval()
    inputs, outputs = _signature(name)
    ((input_name, row),) = inputs.items()
    assert list(inspect.signature(module.forward).parameters) == [input_name]  # ONNX takes forward()'s names
    with torch.no_grad():
        result = module(torch.zeros(3, *row))
    assert {key: list(value.shape[1:]) for key, value in result.items()} == outputs


def test_torch_training_learns_the_digits_quickly() -> None:
    from torch import nn

    from examples.mlp_torch import FEATURES, DigitsMLP
    from examples.torch_training import fit, predict

    split = datasets.digits()
    train_x, validation_x = (x.reshape(len(x), FEATURES) for x in (split.train_x, split.validation_x))
    model, loss = DigitsMLP(), nn.CrossEntropyLoss()
    first = fit(model, lambda x, y: loss(model.scores(x), y), train_x[:400], split.train_y[:400], epochs=1)
    last = fit(model, lambda x, y: loss(model.scores(x), y), train_x[:400], split.train_y[:400], epochs=3)
    assert last < first
    accuracy = np.mean(predict(model, validation_x)["probabilities"].argmax(axis=1) == split.validation_y)
    assert accuracy > 0.6  # 400 images, 4 epochs; chance is 0.1


def test_keras_sentiment_model_matches_the_served_signature() -> None:
    from examples.sentiment_keras import SEQUENCE_LENGTH, build_model

    vocabulary = Vocabulary.load(MODELS / "sentiment" / "vocabulary.json")
    assert vocabulary.sequence_length == SEQUENCE_LENGTH
    model = build_model(vocabulary.size)
    inputs, outputs = _signature("sentiment")
    assert inputs == {"tokens": [SEQUENCE_LENGTH]}
    assert model.output_names == list(outputs)
    rows = vocabulary.encode(sentences.generate(4, seed=0).sentences)
    assert np.asarray(model.predict(rows, verbose=0)).shape == (4, *outputs["probabilities"])


def test_waveform_serving_signature_matches_the_served_model() -> None:
    from examples.waveform_tensorflow import WaveformServing, build_model

    serving = WaveformServing(build_model())
    inputs, outputs = _signature("waveform")
    (spec,) = serving.serve.input_signature
    assert {spec.name: spec.shape.as_list()[1:]} == inputs
    signals, _ = datasets.waveforms(3, seed=0)
    result = serving.serve(signals)
    assert {key: value.shape.as_list()[1:] for key, value in result.items()} == outputs
