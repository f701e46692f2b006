"""A sweep's record: one step per concurrency, its JSON file (``--out``, read back by ``--compare``) and
its table.

Client numbers come from the load generator; the ``server`` split of each step comes from the statistics
extension, the difference of the model's counters before and after the step, per successful request: time
queued (batcher) and computing (input, infer, output, summed as Triton reports them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from .endpoints import StatsTotals
from .errors import BenchError

__all__ = ["FORMAT", "BenchRun", "ServerSplit", "Step", "comparison_table", "read_run", "steps_table"]

FORMAT = "modelport-bench/1"


@dataclass(frozen=True)
class ServerSplit:
    """Per successful request during one step, from the server's statistics (ms)."""

    requests: int
    failures: int
    queue_ms: float
    compute_ms: float
    compute_input_ms: float
    compute_infer_ms: float
    compute_output_ms: float

    @classmethod
    def from_delta(cls, delta: StatsTotals) -> ServerSplit:
        per = 1e6 * max(delta.success, 1)
        parts = (delta.compute_input_ns / per, delta.compute_infer_ns / per, delta.compute_output_ns / per)
        return cls(delta.success, delta.fail, delta.queue_ns / per, sum(parts), *parts)


@dataclass(frozen=True)
class Step:
    """One concurrency of the sweep as the generator measured it (latencies in ms)."""

    concurrency: int
    requests: int
    failures: int
    duration_s: float
    requests_per_s: float
    inferences_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    server: ServerSplit | None


@dataclass(frozen=True)
class BenchRun:
    """A whole sweep: what was benchmarked, how, and its steps."""

    label: str
    model: str
    version: str
    url: str
    protocol: str
    encoding: str  # "binary" or "json" over REST; "raw" (raw_input_contents) over gRPC
    batch: int
    duration_s: float
    warm_up_s: float
    generator: str
    generator_note: str
    threads: int  # of wrk/h2load
    server: dict[str, Any]
    data: str
    inputs: list[dict[str, Any]]  # name, datatype, the metadata's shape and the shape sent
    started_at: str
    steps: list[Step] = field(default_factory=list)

    def write(self, path: Path) -> None:
        """The run as JSON in ``path``; :class:`BenchError` when it cannot be written."""
        try:
            path.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n")
        except OSError as error:
            raise BenchError(f"--out {path}: cannot write it ({error.strerror})") from None


def read_run(path: Path) -> BenchRun:
    """The run in ``path`` (written by ``--out``); :class:`BenchError` saying why it cannot be read."""
    try:
        record = json.loads(path.read_text())
    except OSError as error:
        raise BenchError(f"--compare {path}: cannot read it ({error.strerror})") from None
    except ValueError as error:
        raise BenchError(f"--compare {path}: not JSON ({error})") from None
    if not isinstance(record, dict) or record.pop("format", None) != FORMAT:
        raise BenchError(f"--compare {path}: not a results file of 'modelport bench --out' ({FORMAT})")
    try:
        steps = [
            Step(**{**s, "server": ServerSplit(**s["server"]) if s.get("server") else None})
            for s in record.pop("steps")
        ]
        return BenchRun(**record, steps=steps)
    except (KeyError, TypeError) as error:
        raise BenchError(f"--compare {path}: a field is missing or unknown ({error})") from None


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def steps_table(run: BenchRun) -> Table:
    """Throughput, client percentiles and the server's queue/compute split, one row per concurrency."""
    table = Table(title=f"{run.label}: {run.model} over {run.protocol} ({run.encoding}), batch {run.batch}")
    for column in ("concurrency", "infer/s", "req/s", "p50 ms", "p90 ms", "p99 ms", "failed"):
        table.add_column(column, justify="right")
    table.add_column("server queue ms", justify="right")
    table.add_column("server compute ms", justify="right")
    for step in run.steps:
        split = step.server
        table.add_row(
            str(step.concurrency),
            f"{step.inferences_per_s:.1f}",
            f"{step.requests_per_s:.1f}",
            _ms(step.p50_ms),
            _ms(step.p90_ms),
            _ms(step.p99_ms),
            str(max(step.failures, split.failures if split else 0)),  # one failure may be seen by both
            _ms(split.queue_ms) if split else "-",
            _ms(split.compute_ms) if split else "-",
        )
    table.caption = f"load generator: {run.generator}" + (
        f" -- {run.generator_note}" if run.generator_note else ""
    )
    return table


def comparison_table(run: BenchRun, others: Sequence[BenchRun]) -> Table:
    """Per concurrency, this run's throughput and p99 beside each other run's, and the throughput ratio."""
    table = Table(title="comparison (ratio = this run's infer/s / the other's)")
    table.add_column("concurrency", justify="right")
    table.add_column(f"{run.label} infer/s | p99 ms", justify="right")
    for other in others:
        table.add_column(f"{other.label} infer/s | p99 ms", justify="right")
        table.add_column("ratio", justify="right")
    concurrencies = sorted({s.concurrency for r in (run, *others) for s in r.steps})
    for concurrency in concurrencies:
        mine = next((s for s in run.steps if s.concurrency == concurrency), None)
        cells = [str(concurrency), _pair(mine)]
        for other in others:
            theirs = next((s for s in other.steps if s.concurrency == concurrency), None)
            ratio = (
                f"{mine.inferences_per_s / theirs.inferences_per_s:.2f}x"
                if mine and theirs and theirs.inferences_per_s > 0
                else "-"
            )
            cells += [_pair(theirs), ratio]
        table.add_row(*cells)
    return table


def _pair(step: Step | None) -> str:
    return "-" if step is None else f"{step.inferences_per_s:.1f} | {_ms(step.p99_ms)}"
