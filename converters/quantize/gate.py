"""The accuracy gate: a quantized model's outputs against the FP32 model's on the same validation samples.

For every output: the max and mean absolute error, and the normalized mean error (mean |q - f| / std(f)).
For a classifier output also the top-1 agreement (the share of samples whose arg-max, or for one column the
side of the threshold, is unchanged). The *accuracy drop* that ``--max-accuracy-drop`` bounds is, per output,
the share of changed decisions for a classifier output and the normalized mean error for any other; the gate
takes the worst output. ``--max-abs-error`` optionally bounds every output's max abs error too. Non-finite
outputs fail the gate whatever the bounds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..samples import SampleSet
from .sample_choice import cast_feed

__all__ = ["AccuracyReport", "OutputAccuracy", "Task", "compare_outputs", "run_model", "wilson_interval"]

Task = Literal["auto", "classifier", "regression"]
Array = npt.NDArray[Any]

_CLASSIFIER_NAME = re.compile(r"prob|logit|class|score|label|softmax", re.IGNORECASE)
_VALIDATION_BATCH = 32


@dataclass(frozen=True, slots=True)
class OutputAccuracy:
    """Errors of one output; ``top1_agreement`` is ``None`` for outputs that are not classifier outputs."""

    name: str
    max_abs_error: float
    mean_abs_error: float
    normalized_mean_error: float
    top1_agreement: float | None

    @property
    def drop(self) -> float:
        """What the gate bounds for this output (see the module docstring); ``inf`` when not finite."""
        value = self.normalized_mean_error if self.top1_agreement is None else 1.0 - self.top1_agreement
        return value if math.isfinite(self.max_abs_error) else math.inf


@dataclass(frozen=True, slots=True)
class AccuracyReport:
    """The gate's verdict: per-output errors, the worst drop, the bound, and the samples compared."""

    outputs: list[OutputAccuracy]
    samples: int
    validation_source: str
    max_accuracy_drop: float
    max_abs_error: float | None = None  # optional second bound, on every output's max abs error
    generated: bool = False  # judged on random inputs, not data: the agreement then says little

    def agreement_interval(self, output: OutputAccuracy) -> tuple[float, float] | None:
        """The 95 % Wilson interval of ``output``'s top-1 agreement over the samples compared."""
        if output.top1_agreement is None or self.samples == 0:
            return None
        return wilson_interval(output.top1_agreement, self.samples)

    @property
    def drop(self) -> float:
        return max((o.drop for o in self.outputs), default=0.0)

    @property
    def worst_abs_error(self) -> float:
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    @property
    def failures(self) -> list[str]:
        """Why the gate refuses, one phrase per bound exceeded (empty when it passes)."""
        reasons = []
        if not self.drop <= self.max_accuracy_drop:
            reasons.append(
                f"accuracy drop {self.drop:.4g} exceeds --max-accuracy-drop {self.max_accuracy_drop:g}"
            )
        if self.max_abs_error is not None and not self.worst_abs_error <= self.max_abs_error:
            reasons.append(
                f"max abs error {self.worst_abs_error:.4g} exceeds --max-abs-error {self.max_abs_error:g}"
            )
        return reasons

    @property
    def passed(self) -> bool:
        return not self.failures


def wilson_interval(share: float, count: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95 % for the default ``z``) of a proportion ``share`` of ``count`` trials:
    unlike the normal approximation it stays inside [0, 1] and is honest at 0 and 100 %."""
    centre = (share + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(share * (1 - share) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return max(0.0, centre - half), min(1.0, centre + half)


def run_model(
    model_path: Path, samples: SampleSet, *, session_config: Mapping[str, str] | None = None
) -> dict[str, Array]:
    """All outputs of ``model_path`` over ``samples``, concatenated on axis 0 (stacked when fed singly)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    for key, value in (session_config or {}).items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    collected: dict[str, list[Array]] = {name: [] for name in names}
    for feed in samples.batches(_VALIDATION_BATCH):
        for name, value in zip(names, session.run(names, cast_feed(session, feed)), strict=True):
            collected[name].append(np.asarray(value))
    join = np.stack if samples.stacked else np.concatenate
    return {name: join(parts) for name, parts in collected.items()}


def _normalized(mean_abs: float, ref: Array) -> float:
    """``mean_abs`` relative to the spread (standard deviation) of the FP32 values, or, for constant values,
    to their magnitude: a scale-free figure that centred outputs (standardized targets) do not inflate."""
    if mean_abs == 0 or not math.isfinite(mean_abs):
        return mean_abs
    for scale in (float(ref.std()), float(np.abs(ref).mean())):
        if scale > 0:
            return mean_abs / scale
    return math.inf


def _is_classifier(name: str, reference: Array, task: Task, labelled: Collection[str]) -> bool:
    if reference.ndim != 2 or reference.dtype.kind != "f":
        return False
    if task != "auto":
        return task == "classifier"
    if name in labelled or _CLASSIFIER_NAME.search(name):
        return True
    if reference.shape[1] < 2:
        return False
    return bool(np.all(reference >= 0) and np.allclose(reference.sum(axis=1), 1.0, atol=1e-3))


def _decisions(values: Array, reference: Array) -> Array:
    if values.shape[1] > 1:
        decisions: Array = np.argmax(values, axis=1)
        return decisions
    # One column: a probability (threshold 0.5) or a logit (threshold 0), judged by the FP32 values.
    threshold = 0.5 if np.all((reference >= 0) & (reference <= 1)) else 0.0
    above: Array = values[:, 0] > threshold
    return above


def compare_outputs(
    reference: Mapping[str, Array],
    candidate: Mapping[str, Array],
    *,
    samples: SampleSet,
    max_accuracy_drop: float,
    max_abs_error: float | None = None,
    task: Task = "auto",
    labelled: Collection[str] = (),
) -> AccuracyReport:
    """Compare ``candidate`` (quantized) with ``reference`` (FP32) output by output.

    ``labelled`` names the outputs the model's config gives class labels (classifier outputs in ``auto``).
    """
    results = []
    for name, ref_raw in reference.items():
        ref = ref_raw.astype(np.float64)
        cand = candidate[name].astype(np.float64).reshape(ref.shape)
        diff = np.abs(cand - ref)
        finite = bool(np.all(np.isfinite(cand)))
        max_abs = float(diff.max()) if finite and diff.size else (0.0 if finite else math.inf)
        mean_abs = float(diff.mean()) if finite and diff.size else (0.0 if finite else math.inf)
        relative = _normalized(mean_abs, ref)
        flat_ref = ref.reshape(len(ref), -1) if ref.ndim > 2 and samples.stacked else ref
        flat_cand = cand.reshape(flat_ref.shape)
        agreement = None
        if _is_classifier(name, flat_ref, task, labelled):
            agreement = float(np.mean(_decisions(flat_cand, flat_ref) == _decisions(flat_ref, flat_ref)))
        results.append(OutputAccuracy(name, max_abs, mean_abs, relative, agreement))
    return AccuracyReport(
        results, samples.count, samples.source, max_accuracy_drop, max_abs_error, generated=samples.generated
    )
