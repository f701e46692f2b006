"""The seed's seven architectures as small Keras functional models, and a TensorFlow SavedModel wrapper."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

__all__ = ["KERAS_ARCHITECTURES", "save_saved_model"]

FEATURES, CLASSES, STEPS, CHANNELS, SIDE = 12, 3, 6, 4, 8
layers = keras.layers


def _mlp() -> keras.Model:
    features = keras.Input((FEATURES,), name="features")
    hidden = layers.Dropout(0.3)(layers.Dense(16, activation="relu")(features))
    return keras.Model(features, layers.Dense(CLASSES, activation="softmax", name="probabilities")(hidden))


def _cnn() -> keras.Model:
    image = keras.Input((SIDE, SIDE, 1), name="image")
    x = layers.MaxPooling2D(2)(layers.Conv2D(4, 3, padding="same", activation="relu")(image))
    return keras.Model(image, layers.Dense(CLASSES, name="logits")(layers.Flatten()(x)))


def _recurrent(make: Callable[[], Any]) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        sequence = keras.Input((STEPS, CHANNELS), name="sequence")
        return keras.Model(sequence, layers.Dense(2, name="scores")(make()(sequence)))

    return build


def _autoencoder() -> keras.Model:
    image = keras.Input((SIDE, SIDE, 1), name="image")
    code = layers.MaxPooling2D(2)(layers.Conv2D(4, 3, padding="same", activation="relu")(image))
    x = layers.Conv2DTranspose(4, 2, strides=2, activation="relu")(code)
    return keras.Model(
        image, layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="reconstruction")(x)
    )


KERAS_ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "rnn": _recurrent(lambda: layers.SimpleRNN(8)),
    "lstm": _recurrent(lambda: layers.LSTM(8)),
    "gru": _recurrent(lambda: layers.GRU(8)),
    "bilstm": _recurrent(lambda: layers.Bidirectional(layers.LSTM(8))),
    "autoencoder": _autoencoder,
}


class _Served(tf.Module):  # type: ignore[misc]  # tensorflow has no type stubs
    def __init__(self, model: keras.Model) -> None:
        super().__init__()
        self.model = model
        spec = model.inputs[0]
        self.output_name = model.output_names[0]
        self.serve = tf.function(
            self._serve, input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=spec.name)]
        )

    def _serve(self, tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        return {self.output_name: self.model(tensor, training=False)}


def save_saved_model(model: keras.Model, path: Path) -> None:
    """Save ``model`` as a plain TensorFlow SavedModel whose ``serving_default`` signature keys are the Keras
    input and output names."""
    module = _Served(model)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
