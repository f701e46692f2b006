"""``--plot``: throughput against p99 latency, one point per concurrency, one line per run (matplotlib).

matplotlib is the optional ``bench`` extra, not a serving dependency: it is imported only here, when a plot
is asked for, and its absence is an error naming the extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import BenchError
from .results import BenchRun

__all__ = ["plot_runs", "pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` drawing to files (Agg); :class:`BenchError` naming the extra when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on servers
        import matplotlib.pyplot as plt
    except ImportError:
        raise BenchError(
            "--plot needs matplotlib, which is not installed: pip install 'modelport[bench]'"
        ) from None
    return plt


def plot_runs(runs: Sequence[BenchRun], path: Path) -> None:
    """Write the curve of every run in ``runs`` (this run first, then the ``--compare`` ones) to ``path``."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for run in runs:
            xs = [step.p99_ms for step in run.steps]
            ys = [step.inferences_per_s for step in run.steps]
            (line,) = axes.plot(xs, ys, marker="o", label=_legend(run))
            for step in run.steps:
                axes.annotate(
                    f"c={step.concurrency}",
                    (step.p99_ms, step.inferences_per_s),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=line.get_color(),
                )
        axes.set_title(f"{runs[0].model}: throughput vs p99 latency, per concurrency (c)")
        axes.set_xlabel("p99 latency (ms)")
        axes.set_ylabel("throughput (inferences/s)")
        axes.set_xlim(left=0)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="best")
        figure.tight_layout()
        try:
            figure.savefig(path, format="png")
        except OSError as error:
            raise BenchError(f"--plot {path}: cannot write it ({error.strerror})") from None
    finally:
        plt.close(figure)


def _legend(run: BenchRun) -> str:
    how = ([] if run.protocol in run.label else [run.protocol]) + [f"batch {run.batch}", run.generator]
    return f"{run.label} ({', '.join(how)})"
