"""Recipe: a TensorFlow LSTM that tells noisy waveforms apart, saved as a SavedModel directory.

Served as ``waveform``: input ``signal`` FP32 ``[batch, 40, 1]`` (one sample per time step), output the
probabilities of ``sine``, ``square``, ``triangle`` and ``sawtooth``. Frequency, phase, amplitude, offset and
noise are random (``examples.datasets.waveforms``), so the network has to read the shape over time.
Validation accuracy on 1000 held-out signals is above 90%.

The SavedModel is a ``tf.Module`` with a ``serving_default`` signature, as TensorFlow Serving expects; the
layers inside are Keras'.

Run alone: ``python -m examples.waveform_tensorflow [--repository models]``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from examples import datasets
from examples.publish import KEPT_ROWS, Built, ModelSpec, main_for, publish

__all__ = ["NAME", "WaveformServing", "build", "build_model"]

NAME = "waveform"
SEED = 0
TRAIN_SIGNALS = 4000


class WaveformServing(tf.Module):  # type: ignore[misc]  # tensorflow ships no type information
    """The exported module: ``serving_default(signal) -> {"probabilities": ...}``."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__()
        self.model = model

    @tf.function(  # type: ignore[untyped-decorator]  # tensorflow ships no type information
        input_signature=[tf.TensorSpec([None, datasets.WAVEFORM_LENGTH, 1], tf.float32, name="signal")]
    )
    def serve(self, signal: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": self.model(signal, training=False)}


def build_model() -> keras.Model:
    """LSTM(32) over the time steps -> dense(4) -> softmax."""
    signal = keras.Input(shape=(datasets.WAVEFORM_LENGTH, 1), name="signal")
    x = keras.layers.LSTM(32)(signal)
    probabilities = keras.layers.Dense(len(datasets.WAVEFORM_LABELS), activation="softmax")(x)
    return keras.Model(signal, probabilities)


def build(workdir: Path, repository: Path) -> Built:
    """Train on generated signals, save a SavedModel in ``workdir`` and convert it into ``repository``."""
    keras.utils.set_random_seed(SEED)
    train_x, train_y = datasets.waveforms(TRAIN_SIGNALS, seed=datasets.WAVEFORM_TRAIN_SEED)
    validation_x, validation_y = datasets.waveforms(
        datasets.WAVEFORM_VALIDATION_SIZE, seed=datasets.WAVEFORM_VALIDATION_SEED
    )
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy")
    model.fit(train_x, train_y, epochs=16, batch_size=64, verbose=0)
    predicted = np.asarray(model.predict(validation_x, verbose=0)).argmax(axis=1)
    accuracy = float(np.mean(predicted == validation_y))

    source = workdir / "waveform_savedmodel"
    serving = WaveformServing(model)
    tf.saved_model.save(serving, str(source), signatures={"serving_default": serving.serve})
    held_out = {"signal": validation_x[:KEPT_ROWS]}
    spec = ModelSpec(name=NAME, source=source, labels=datasets.WAVEFORM_LABELS, samples=held_out)
    return publish(spec, repository, metric="validation accuracy", value=accuracy)


if __name__ == "__main__":
    main_for(NAME, build)
