"""``package.module:factory`` callables the converter tests point the CLI and the API at.

Frameworks are imported inside each factory, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "data_dependent",
    "embedding_classifier",
    "keras_mlp",
    "keras_special_function",
    "keras_unbuilt",
    "noisy",
    "not_a_model",
    "tiny_mlp",
]


def tiny_mlp() -> Any:
    """A 4 -> 3 MLP with freshly initialised weights (tests load trained ones with --weights)."""
    from torch import nn

    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def data_dependent() -> Any:
    """Branches in Python on a tensor's value: torch.export cannot trace it."""
    import torch

    class Branching(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:
                return x * 2
            return -x

    return Branching()


def noisy() -> Any:
    """Adds fresh random noise on every call: the ONNX graph cannot reproduce the framework's outputs."""
    import torch

    class Noisy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.rand_like(x)

    return Noisy()


def embedding_classifier() -> Any:
    """Token ids -> a 5-entry embedding -> mean -> 2 scores: ids >= 5 would crash the framework."""
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(5, 4)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            scores: torch.Tensor = self.head(self.embedding(tokens).mean(dim=1))
            return scores

    return Classifier()


def keras_mlp() -> Any:
    """A functional Keras model with named input and output layers."""
    import keras

    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(features)
    return keras.Model(features, keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden))


def keras_unbuilt() -> Any:
    """A Sequential model without an Input: it has no shapes until --input gives them."""
    import keras

    return keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, name="scores")])


def keras_special_function() -> Any:
    """A layer computing the Bessel function I0e, which tf2onnx cannot translate."""
    import keras
    import tensorflow as tf

    class Bessel(keras.layers.Layer):  # type: ignore[misc]  # keras has no type stubs
        def call(self, inputs: Any) -> Any:
            return tf.math.bessel_i0e(inputs)

    features = keras.Input((4,), name="features")
    return keras.Model(features, Bessel(name="bessel_layer")(keras.layers.Dense(4, name="dense")(features)))


def not_a_model() -> Any:
    """Returns something no converter reads."""
    return {"weights": [1, 2, 3]}


def keras_exact_and_tanh_gelu() -> Any:
    """A transformer-style feed-forward block: Keras's exact GELU (tf2onnx leaves ``Erfc``), then tanh."""
    import keras

    features = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation=keras.activations.gelu, name="exact")(features)
    tanh = keras.layers.Dense(8, name="tanh")(hidden)
    return keras.Model(
        features, keras.layers.Activation(lambda t: keras.activations.gelu(t, approximate=True))(tanh)
    )


def keras_expm1_and_xlogy() -> Any:
    """Layers computing expm1 and xlogy, which tf2onnx passes through untranslated."""
    import keras
    import tensorflow as tf

    class Special(keras.layers.Layer):  # type: ignore[misc]  # keras has no type stubs
        def call(self, inputs: Any) -> Any:
            return tf.concat([tf.math.expm1(inputs), tf.math.xlogy(inputs, tf.abs(inputs) + 1.0)], axis=-1)

    features = keras.Input((4,), name="features")
    return keras.Model(features, Special(name="special")(keras.layers.Dense(4, name="dense")(features)))
