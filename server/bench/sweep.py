"""The sweep itself: which generator makes the load, and one step per concurrency with the server's
statistics read around it; a rich progress bar on stderr counts the seconds of load."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from .endpoints import Endpoint, StatsTotals
from .errors import BenchError, ServerUnreachable
from .generators import PACKAGES, LoadResult, ensure_tools, run_h2load, run_wrk, tool_version
from .load_plan import LoadPlan
from .python_generator import BOTTLENECK_NOTE, run_python
from .results import BenchRun, ServerSplit, Step

__all__ = ["Runner", "choose_generator", "run_sweep"]

_NATIVE = {"http": "wrk", "grpc": "h2load"}

Runner = Callable[[int, float], LoadResult]


def choose_generator(
    choice: str, protocol: str, plan: LoadPlan, *, install: bool, threads: int = 1
) -> tuple[Runner, str, str]:
    """The load to run per step, the generator's name and version, and a note to print (or "")."""
    native = _NATIVE[protocol]
    if choice not in ("auto", "python", native):
        raise BenchError(f"--generator {choice} cannot drive {protocol}: use {native} or python")
    if choice != "python":
        missing = ensure_tools(native) if install else [native] if shutil.which(native) is None else []
        if not missing:
            return _native_runner(native, plan, threads), tool_version(native), ""
        if choice == native:
            raise BenchError(
                f"{native} is not installed (Debian package {PACKAGES[native]}); install it, or run as "
                "root with --install"
            )
    note = (
        BOTTLENECK_NOTE
        if choice == "auto"
        else "the in-process Python generator (asked for) may be the bottleneck"
    )

    def python(level: int, seconds: float) -> LoadResult:
        return run_python(plan=plan, concurrency=level, seconds=seconds)

    return python, "python (tritonclient asyncio)", note


def _native_runner(tool: str, plan: LoadPlan, threads: int) -> Runner:
    if tool == "wrk":
        rest = plan.rest_body()

        def wrk(level: int, seconds: float) -> LoadResult:
            return run_wrk(
                plan.infer_url,
                rest.body,
                rest.header_length,
                concurrency=level,
                seconds=seconds,
                threads=threads,
            )

        return wrk
    message = plan.grpc_message()

    def h2load(level: int, seconds: float) -> LoadResult:
        return run_h2load(
            plan.infer_url, message, concurrency=level, seconds=seconds, warm_up_s=0, threads=threads
        )

    return h2load


def _statistics(endpoint: Endpoint, model: str, version: str) -> StatsTotals | None:
    """The model's statistics, or None (with a note on stderr) from a server without the extension."""
    try:
        return endpoint.statistics(model, version)
    except ServerUnreachable:
        raise
    except BenchError as error:
        Console(stderr=True).print(f"note: no server-side split, the statistics failed: {error.message}")
        return None


def run_sweep(
    *,
    run: BenchRun,
    endpoint: Endpoint,
    runner: Runner,
    levels: list[int],
    seconds: int,
    warm_up: int,
    model: str,
    version: str,
) -> None:
    """Run ``warm_up`` seconds of load at the first level (not recorded: connections, sessions and caches
    start cold), then every step, appending to ``run.steps``; the bar counts seconds of load."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with progress, ThreadPoolExecutor(1, thread_name_prefix="bench-load") as pool:
        task = progress.add_task(run.generator, total=warm_up + len(levels) * seconds)

        def load(level: int, length: int, done: int) -> LoadResult:
            """``runner`` at ``level`` for ``length`` s in the pool, the bar advancing from ``done`` s."""
            future: Future[LoadResult] = pool.submit(runner, level, float(length))
            started = time.monotonic()
            while not future.done():
                progress.update(task, completed=done + min(float(length), time.monotonic() - started))
                time.sleep(0.1)
            progress.update(task, completed=done + length)
            try:
                return future.result()
            except RuntimeError as error:
                raise BenchError(f"the load generator failed at concurrency {level}: {error}") from None

        if warm_up > 0:
            progress.update(task, description=f"{run.generator}: warm-up at concurrency {levels[0]}")
            load(levels[0], warm_up, 0)
        for index, level in enumerate(levels):
            progress.update(task, description=f"{run.generator}: concurrency {level}")
            before = _statistics(endpoint, model, version)
            result = load(level, seconds, warm_up + index * seconds)
            after = _statistics(endpoint, model, version) if before is not None else None
            split = (
                ServerSplit.from_delta(after - before) if before is not None and after is not None else None
            )
            run.steps.append(
                Step(
                    concurrency=level,
                    requests=result.requests,
                    failures=result.failures,
                    duration_s=result.duration_s,
                    requests_per_s=result.rate,
                    inferences_per_s=result.rate * run.batch,
                    p50_ms=result.p50_ms,
                    p90_ms=result.p90_ms,
                    p99_ms=result.p99_ms,
                    server=split,
                )
            )
