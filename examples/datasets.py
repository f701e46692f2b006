"""The recipes' numeric data sets: scikit-learn's 8x8 digits, noisy digits, and synthetic waveforms.

Everything is generated here or shipped inside scikit-learn (nothing is downloaded), and every split is fixed
by a seed, so the tests regenerate the held-out data the recipes were validated on. The first 100 held-out
digits also ship beside this file (``digits_sample.npz``, 3 kB), so the client scripts read digits in the
serving environment, which has no scikit-learn (:func:`digits_sample`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIGIT_LABELS",
    "NOISE_SEED",
    "WAVEFORM_LABELS",
    "WAVEFORM_LENGTH",
    "WAVEFORM_TRAIN_SEED",
    "WAVEFORM_VALIDATION_SEED",
    "WAVEFORM_VALIDATION_SIZE",
    "Split",
    "add_noise",
    "digits",
    "digits_sample",
    "waveforms",
]

DIGIT_LABELS: tuple[str, ...] = tuple(str(digit) for digit in range(10))
WAVEFORM_LABELS: tuple[str, ...] = ("sine", "square", "triangle", "sawtooth")
WAVEFORM_LENGTH = 40
WAVEFORM_TRAIN_SEED = 10
WAVEFORM_VALIDATION_SEED = 11
WAVEFORM_VALIDATION_SIZE = 1000
NOISE_SEED = 7  # the noise on the held-out digits the denoiser is judged on
DIGITS_SAMPLE = Path(__file__).resolve().parent / "digits_sample.npz"

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Split:
    """Training and held-out validation data (features float32, labels int64)."""

    train_x: Floats
    train_y: Ints
    validation_x: Floats
    validation_y: Ints


def digits(*, seed: int = 0, validation_fraction: float = 0.25) -> Split:
    """scikit-learn's 1797 8x8 digit images scaled to [0, 1], shape ``[N, 1, 8, 8]``, stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    train_x, validation_x, train_y, validation_y = train_test_split(
        images, labels, test_size=validation_fraction, random_state=seed, stratify=labels
    )
    return Split(train_x, train_y, validation_x, validation_y)


def digits_sample() -> tuple[Floats, Ints]:
    """The first 100 held-out images of :func:`digits` (default seed) and their labels, read from
    ``digits_sample.npz`` with numpy alone: images ``[100, 1, 8, 8]`` in [0, 1] (stored as the 0-16 ints
    scikit-learn ships, so the values are the same floats), labels int64."""
    with np.load(DIGITS_SAMPLE) as sample:
        images = (sample["images"].astype(np.float32) / 16.0)[:, None, :, :]
        return images, sample["labels"].astype(np.int64)


def add_noise(images: Floats, *, seed: int, stddev: float = 0.35) -> Floats:
    """``images`` plus Gaussian noise, clipped back to [0, 1] (the denoiser's input)."""
    rng = np.random.default_rng(seed)
    noisy = images + rng.normal(0.0, stddev, size=images.shape)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def waveforms(count: int, *, seed: int, length: int = WAVEFORM_LENGTH) -> tuple[Floats, Ints]:
    """Noisy periodic signals ``[count, length, 1]`` and their shape class (index into ``WAVEFORM_LABELS``).

    Frequency (1 to 4 periods per window), phase, amplitude, offset and noise are random, so only the shape of
    the wave tells the classes apart.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(WAVEFORM_LABELS), size=count)
    periods = rng.uniform(1.0, 4.0, size=(count, 1))
    phase = rng.uniform(0.0, 1.0, size=(count, 1))
    cycle = (np.arange(length)[None, :] / length * periods + phase) % 1.0  # position within the period
    shapes = np.stack(
        [
            np.sin(2 * np.pi * cycle),
            np.where(cycle < 0.5, 1.0, -1.0),
            4 * np.abs(cycle - 0.5) - 1,
            2 * cycle - 1,
        ]
    )
    signal = shapes[labels, np.arange(count)]
    amplitude = rng.uniform(0.5, 1.5, size=(count, 1))
    offset = rng.uniform(-0.3, 0.3, size=(count, 1))
    noisy = amplitude * signal + offset + rng.normal(0.0, 0.1, size=(count, length))
    return noisy.astype(np.float32)[:, :, None], labels.astype(np.int64)
