"""Poison isolation: which request of a batch crashes the model's worker.

The pool has already retried the batch once (:class:`~.workers.pool.BatchCrashedWorker` says both attempts
died). A batch of one request is then the culprit. A larger batch runs each of its requests alone, once and
concurrently: those that crash the worker again fail with :class:`~.workers.pool.RequestCrashedWorker`
(400: the model cannot take this input), the others are delivered as if nothing had happened. The pool does
not count crashes tied to a batch toward failing the version, so this costs the culprit, never the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import numpy as np

from ..executor import ExecutionResult
from ..inference import Tensors
from ..workers.instances import InstancePool
from ..workers.pool import BatchCrashedWorker, RequestCrashedWorker
from ..workers.worker_process import BatchTimings

__all__ = ["Pending", "copy_outputs", "isolate"]

log = logging.getLogger(__name__)


class Pending(Protocol):
    """A queued request as the batcher holds it."""

    inputs: Tensors
    output_names: tuple[str, ...]
    rows: int
    future: asyncio.Future[ExecutionResult]


P = TypeVar("P", bound=Pending)


def copy_outputs(outputs: Tensors) -> Tensors:
    """The outputs of one request, copied: they are views of the worker's shared memory, reused next batch."""
    return {name: np.array(value, copy=True) for name, value in outputs.items()}


async def isolate(
    requests: Sequence[P],
    crashed: BatchCrashedWorker,
    *,
    pool: InstancePool,
    model: str,
    deliver: Callable[[P, Tensors, BatchTimings, int], None],
) -> None:
    """Settle every request of a batch that crashed its worker on each attempt (see the module docstring);
    ``deliver(request, outputs, timings, waited_ns)`` answers one that ran alone without crashing."""
    if len(requests) == 1:
        _blame(requests[0], crashed, model=model, alone_after=False)
        return
    log.warning(
        "model %s: a batch of %d requests crashed its worker %d times (%s); running them one by one",
        model,
        len(requests),
        crashed.attempts,
        crashed.exit,
    )
    await asyncio.gather(*(_run_alone(r, pool=pool, model=model, deliver=deliver) for r in requests))


async def _run_alone(
    request: P, *, pool: InstancePool, model: str, deliver: Callable[[P, Tensors, BatchTimings, int], None]
) -> None:
    if request.future.done():
        return
    parts = {name: [array] for name, array in request.inputs.items()}
    try:
        outputs, timings, waited_ns = await pool.run(parts, request.output_names, copy_outputs, attempts=1)
    except BatchCrashedWorker as crashed:
        _blame(request, crashed, model=model, alone_after=True)
        return
    except Exception as error:  # any other failure is this request's own, as in a batch
        if not request.future.done():
            request.future.set_exception(error)
        return
    deliver(request, outputs, timings, waited_ns)


def _blame(request: Pending, crashed: BatchCrashedWorker, *, model: str, alone_after: bool) -> None:
    if request.future.done():
        return
    how = "twice in its batch, then alone" if alone_after else "twice"
    log.error("model %s: a request crashed the model's worker %s (%s)", model, how, crashed.exit)
    request.future.set_exception(
        RequestCrashedWorker(
            f"model '{model}': the model's worker crashed on this request ({how}; last: {crashed.exit}); "
            "the model cannot take this input, and the server serves its other requests as before: do not "
            "retry it unchanged"
        )
    )
