"""Real Keras 3 / TensorFlow architectures at small sizes, random weights (imported only by framework tests):
keras.applications of several families, a transformer encoder block, a masked embedding into an LSTM, an
encoder-decoder with two inputs and dict outputs, a model for a legacy ``.h5`` file, and a SavedModel with two
signatures, one of them returning an integer class beside the probabilities."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

__all__ = ["KERAS_REAL_CASES", "SAVED_MODEL_SIGNATURES", "lambda_block", "save_two_signatures"]

SIDE, CLASSES, STEPS, MODEL_DIM, VOCAB = 32, 5, 6, 16, 11
layers = keras.layers


def _application(build: Callable[..., keras.Model], **extra: Any) -> Callable[[], keras.Model]:
    """A keras.applications model at the smallest input it accepts, random weights, logits out (a softmax of
    random weights saturates and would hide errors)."""

    def make() -> keras.Model:
        model = build(
            input_shape=(SIDE, SIDE, 3), weights=None, classes=CLASSES, classifier_activation=None, **extra
        )
        _calibrate_batch_norm(model)
        return model

    return make


def _calibrate_batch_norm(model: keras.Model) -> None:
    """Set every batch norm's moving statistics to those of one batch like the converter's generated inputs
    (standard normal), as training would: with fresh statistics (0 and 1) a deep random network's activations
    shrink layer by layer to outputs of ~1e-14 and any parity check passes, and with statistics of other
    inputs they grow to ~1e3, where float32 rounding alone exceeds the tolerance. One eager step at learning
    rate 0 leaves the weights as they are."""
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, layers.BatchNormalization)]
    for norm in norms:
        norm.momentum = 0.0
    rng = np.random.default_rng(0)
    images = rng.standard_normal(size=(16, *model.input_shape[1:])).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=16)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    for norm in norms:
        norm.momentum = 0.99


def _transformer_block() -> keras.Model:
    sequence = keras.Input((STEPS, MODEL_DIM), name="sequence")
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attention")(sequence, sequence)
    x = layers.LayerNormalization(name="norm1")(sequence + attended)
    hidden = layers.Dense(32, activation="gelu", name="ffn_exact_gelu")(x)  # exact: tf2onnx leaves Erfc
    hidden = layers.Dense(32, name="ffn_in")(hidden)
    hidden = keras.ops.gelu(hidden, approximate=True)  # a serialisable op node in the functional graph
    x = layers.LayerNormalization(name="norm2")(x + layers.Dense(MODEL_DIM, name="ffn_out")(hidden))
    pooled = layers.GlobalAveragePooling1D()(x)
    return keras.Model(sequence, layers.Dense(CLASSES, activation="softmax", name="probabilities")(pooled))


def _masked_lstm() -> keras.Model:
    tokens = keras.Input((STEPS,), dtype="int32", name="tokens")
    embedded = layers.Embedding(VOCAB, 8, mask_zero=True, name="embedding")(tokens)
    return keras.Model(tokens, layers.Dense(2, name="scores")(layers.LSTM(8, name="lstm")(embedded)))


def _encoder_decoder() -> keras.Model:
    source = keras.Input((STEPS,), dtype="int32", name="source")
    target = keras.Input((STEPS - 1,), dtype="int32", name="target")
    embed = layers.Embedding(VOCAB, 8, name="embedding")
    _, state = layers.GRU(12, return_state=True, name="encoder")(embed(source))
    steps = layers.LSTM(12, return_sequences=True, name="decoder")(
        embed(target), initial_state=[state, state]
    )
    return keras.Model(
        {"source": source, "target": target},
        {
            "logits": layers.Dense(VOCAB, name="logits")(steps),
            "summary": layers.Dense(2, name="summary")(state),
        },
    )


def _legacy_cnn() -> keras.Model:
    image = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv")(image)
    x = layers.BatchNormalization(name="norm")(x)
    x = layers.MaxPooling2D(2)(layers.ReLU()(x))
    x = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    return keras.Model(image, layers.Dense(CLASSES, name="logits")(layers.GlobalAveragePooling2D()(x)))


def lambda_block(kind: str) -> keras.Model:
    """A feed-forward block whose tanh GELU is a Python lambda, as tutorials write it: ``kind`` "Activation"
    (``Activation(lambda ...)``) or "Lambda" (a ``Lambda`` layer). Keras saves the lambda as bytecode and will
    not load it back in safe mode."""
    sequence = keras.Input((STEPS, MODEL_DIM), name="sequence")
    hidden = layers.Dense(32, name="ffn_in")(sequence)
    make = layers.Activation if kind == "Activation" else layers.Lambda
    gelu = make(lambda t: keras.activations.gelu(t, approximate=True), name="tanh_gelu")
    return keras.Model(sequence, layers.Dense(MODEL_DIM, name="ffn_out")(gelu(hidden)))


KERAS_REAL_CASES: dict[str, Callable[[], keras.Model]] = {
    "MobileNetV3Small": _application(
        keras.applications.MobileNetV3Small, alpha=0.75, include_preprocessing=False
    ),
    "MobileNetV2": _application(keras.applications.MobileNetV2, alpha=0.35),
    "EfficientNetB0": _application(keras.applications.EfficientNetB0),
    "transformer_block": _transformer_block,
    "embedding_mask_lstm": _masked_lstm,
    "encoder_decoder_dict": _encoder_decoder,
    "legacy_h5_cnn": _legacy_cnn,
}


class _TwoSignatures(tf.Module):  # type: ignore[misc]  # tensorflow has no type stubs
    """A classifier served two ways: ``classify`` (probabilities and the int64 top class), ``embed``."""

    def __init__(self) -> None:
        super().__init__()
        features = keras.Input((12,), name="features")
        hidden = layers.Dense(16, activation="relu", name="hidden")(features)
        self.embedder = keras.Model(features, hidden)
        self.head = layers.Dense(CLASSES, activation="softmax", name="head")
        self.head.build((None, 16))
        spec = [tf.TensorSpec((None, 12), tf.float32, name="features")]
        self.classify = tf.function(self._classify, input_signature=spec)
        self.embed = tf.function(self._embed, input_signature=spec)

    def _classify(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = self.head(self.embedder(features, training=False))
        return {
            "probabilities": probabilities,
            "label": tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    def _embed(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"embedding": self.embedder(features, training=False)}


# signature -> its outputs' names and numpy dtypes' kinds
SAVED_MODEL_SIGNATURES: dict[str, dict[str, str]] = {
    "classify": {"label": "i", "probabilities": "f"},
    "embed": {"embedding": "f"},
}


def save_two_signatures(path: Path) -> None:
    """A SavedModel with ``serving_default`` = ``classify`` and a second signature ``embed``."""
    module = _TwoSignatures()
    signatures = {"serving_default": module.classify, "classify": module.classify, "embed": module.embed}
    tf.saved_model.save(module, str(path), signatures=signatures)
