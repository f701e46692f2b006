"""One batch through an ONNX Runtime session, the same in a worker process and in a thread instance.

:func:`build_session` opens a version's session from its :class:`~.channel.WorkerSpec` (through
:func:`.session.open_session`); :func:`run_session` feeds it and names ONNX Runtime's refusals:
:class:`InvalidFeed` for an input the model cannot take (a client error), :class:`RunFailed` with the
:func:`.ort_errors.run_failure` kind and message for anything ONNX Runtime raises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..inference import Tensors
from ..model_config import SessionConfig
from ..warmup import WarmupSample
from .channel import WorkerSpec
from .ort_errors import RunFailureKind, run_failure
from .session import ModelLoadError, open_session

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["InvalidFeed", "RunFailed", "build_session", "onnx_inputs", "run_session", "warm_up"]


class InvalidFeed(Exception):
    """A batch the model cannot take (reported as an invalid input)."""


class RunFailed(Exception):
    """ONNX Runtime refused the batch; ``kind`` is ``invalid`` (the client's input) or ``internal``."""

    def __init__(self, kind: RunFailureKind, message: str) -> None:
        super().__init__(message)
        self.kind: RunFailureKind = kind
        self.message = message


def build_session(spec: WorkerSpec, *, warn: bool = True) -> onnxruntime.InferenceSession:
    """The version's session with the spec's threads, optimisation level, providers and operator libraries
    (blocking; :class:`~.session.ModelLoadError` if it cannot be loaded). ``warn``: as
    :func:`~.session.open_session`'s."""
    config = SessionConfig(
        graph_optimization_level=spec.graph_optimization_level,  # type: ignore[arg-type]  # validated by config.yaml
        intra_op_threads=spec.intra_op_threads,
        inter_op_threads=spec.inter_op_threads,
        custom_op_libraries=tuple(spec.custom_op_libraries),
    )
    return open_session(
        Path(spec.path), model=spec.model, config=config, providers=tuple(spec.providers), warn=warn
    ).session


def onnx_inputs(tensors: Tensors) -> dict[str, Any]:
    """Feeds for ONNX Runtime: its string tensors take (UTF-8) str; the protocol's BYTES are bytes."""
    result: dict[str, Any] = {}
    for name, array in tensors.items():
        if array.dtype == np.object_:
            try:
                result[name] = np.array(
                    [item.decode("utf-8") if isinstance(item, bytes) else item for item in array.ravel()],
                    dtype=np.object_,
                ).reshape(array.shape)
            except UnicodeDecodeError as error:
                raise InvalidFeed(
                    f"tensor '{name}': ONNX Runtime string tensors must be UTF-8 ({error.reason} at byte "
                    f"{error.start} of an element)"
                ) from None
        else:
            result[name] = array
    return result


def run_session(
    session: onnxruntime.InferenceSession,
    names: Sequence[str],
    inputs: Tensors,
    options: onnxruntime.RunOptions | None = None,
) -> list[Any]:
    """``session.run(names, inputs, options)``; raises :class:`InvalidFeed` or :class:`RunFailed`, nothing
    else of ONNX Runtime's. Blocking; ONNX Runtime releases the GIL while it computes (``options.terminate``
    set from another thread ends the run early, as a :class:`RunFailed`)."""
    feeds = onnx_inputs(inputs)
    try:
        return list(session.run(list(names), feeds, options))
    except Exception as error:  # ONNX Runtime's own exception types, told apart by ort_errors
        raise RunFailed(*run_failure(error)) from None


def warm_up(session: onnxruntime.InferenceSession, samples: Sequence[WarmupSample]) -> int:
    """Run every warm-up sample ``count`` times, asking for every output; returns the nanoseconds it took.
    Blocking. A sample ONNX Runtime refuses is a :class:`~.session.ModelLoadError` naming it: the instance
    does not serve (and the version does not load) with a warm-up that fails."""
    started = time.monotonic_ns()
    names = [output.name for output in session.get_outputs()]
    for sample in samples:
        for _ in range(sample.count):
            try:
                run_session(session, names, sample.inputs)
            except (InvalidFeed, RunFailed) as error:
                given = ", ".join(f"{n} {list(a.shape)}" for n, a in sample.inputs.items())
                raise ModelLoadError(
                    f"warm-up sample '{sample.name}' (inputs {given}) failed: {error}"
                ) from None
    return time.monotonic_ns() - started
