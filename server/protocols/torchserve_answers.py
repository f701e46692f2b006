"""Answers of TorchServe's predictions API, from the data plane's outputs.

As TorchServe's default handlers give them: one entry per instance (the body's single instance is answered
by its entry alone), each the output as a JSON list, or ``{name: list}`` for a model with several outputs.
With labels for a classifier's output (a ``[batch, classes]`` output of one label per class: the output's
``labels`` in config.yaml, else ``labels.txt`` in the model's folder) the entry is the image classifier
handler's top-k map ``{"label": probability}`` (k = 5 or fewer, highest first; softmax applied unless the
row already is a probability distribution).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ..inference import Tensors
from ..repository.model_manager import LoadedVersion

__all__ = ["LABELS_FILE", "TOP_K", "answer_json", "classifier_labels"]

LABELS_FILE = "labels.txt"
TOP_K = 5


@functools.lru_cache(maxsize=64)
def _labels_file(path: Path, modified_ns: int) -> tuple[str, ...]:
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def classifier_labels(loaded: LoadedVersion) -> tuple[str, ...] | None:
    """The labels of ``loaded``'s classifier output, or None when it is no classifier with labels. Reads
    (once per file version) ``labels.txt`` in the model's folder: blocking, call it off the event loop."""
    outputs = loaded.spec.config.outputs
    if len(outputs) != 1:
        return None
    configured = loaded.spec.config.labels.get(outputs[0].name)
    if configured:
        return configured
    path = loaded.spec.path.parent.parent / LABELS_FILE
    try:
        return _labels_file(path, path.stat().st_mtime_ns)
    except (OSError, UnicodeDecodeError):
        return None


def _top_k(row: np.ndarray[Any, Any], labels: tuple[str, ...]) -> dict[str, float]:
    scores = row.astype(np.float64)
    if not (np.all(scores >= 0) and abs(float(scores.sum()) - 1.0) < 1e-3):
        exp = np.exp(scores - scores.max())
        scores = exp / exp.sum()
    best = np.argsort(-scores, kind="stable")[: min(TOP_K, len(labels))]
    return {labels[i]: float(scores[i]) for i in best}


def answer_json(outputs: Tensors, *, single: bool, labels: tuple[str, ...] | None) -> Any:
    """The JSON value answering outputs whose first dimension is the instances (``single``: one instance,
    answered unwrapped)."""
    arrays = list(outputs.values())
    if labels is not None and len(arrays) == 1 and arrays[0].ndim == 2 and arrays[0].shape[1] == len(labels):
        entries: list[Any] = [_top_k(row, labels) for row in arrays[0]]
    elif len(arrays) == 1:
        entries = _as_json(arrays[0])
    else:
        per_output = {name: _as_json(array) for name, array in outputs.items()}
        count = len(arrays[0])
        entries = [{name: values[i] for name, values in per_output.items()} for i in range(count)]
    return entries[0] if single and len(entries) == 1 else entries


def _as_json(array: np.ndarray[Any, Any]) -> list[Any]:
    if array.dtype == object:
        return [_as_json(row) if isinstance(row, np.ndarray) else _text(row) for row in array]
    values: list[Any] = array.tolist()
    return values


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
