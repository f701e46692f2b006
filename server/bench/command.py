"""``modelport bench MODEL``: a concurrency sweep against an Open Inference Protocol server, as perf_analyzer.

Per concurrency the load generator (wrk for REST, h2load for gRPC, installed on demand; the in-process
Python generator only when neither can be had, with a note) posts one prepared request for ``--duration``
seconds; the server's statistics are read before and after each step for the queue/compute split. One
request is checked with a real client first, so a request the server refuses is an error, not a fast run of
failures. Progress goes to stderr (rich), the table to stdout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from .endpoints import Endpoint, GrpcEndpoint, HttpEndpoint
from .errors import BenchError, ServerUnreachable
from .load_plan import make_plan
from .plot import plot_runs, pyplot
from .results import BenchRun, comparison_table, read_run, steps_table
from .signature import batch_of, generated_tensors, load_tensors, parse_shapes, signature_from_metadata
from .sweep import choose_generator, run_sweep

__all__ = ["bench"]

_DEFAULT_PORT = {"http": 8000, "grpc": 8001}


def _concurrency_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        levels = [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers, e.g. 1,2,4,8"
        ) from None
    if not levels or any(level < 1 for level in levels):
        raise click.BadParameter(f"{value!r}: every concurrency must be at least 1")
    return levels


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model")
@click.option("--url", default=None, help="Server address, host:port. [default: localhost:8000, gRPC :8001]")
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="http", show_default=True)
@click.option("--model-version", default="", help="Version to benchmark. [default: the server's choice]")
@click.option(
    "--concurrency",
    default="1,2,4,8,16",
    show_default=True,
    callback=_concurrency_list,
    help="Requests in flight, one step of the sweep per value.",
)
@click.option(
    "--duration", type=click.IntRange(min=1), default=5, show_default=True, help="Seconds per step."
)
@click.option(
    "--warm-up",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Seconds of load at the first concurrency before the sweep, not recorded (0: none).",
)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Rows per request.")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="An .npz with one array per input (as sent; its first dimension is the batch). [default: random "
    "data shaped from the model's metadata]",
)
@click.option(
    "--shape",
    multiple=True,
    metavar="NAME:D1,D2",
    help="An input's dimensions after the batch, for dynamic ones (random data only; may repeat). "
    "[default: 1 for each dynamic dimension]",
)
@click.option("--binary/--json", default=True, show_default=True, help="REST encoding of the tensors.")
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "h2load", "python"]),
    default="auto",
    show_default=True,
    help="Load generator; auto: wrk (HTTP) or h2load (gRPC), installed with apt-get when missing and "
    "allowed, else the in-process Python one.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads of wrk/h2load (one drives tens of thousands of requests/s; more for a faster server).",
)
@click.option(
    "--install/--no-install",
    default=True,
    show_default=True,
    help="Install a missing wrk/h2load with apt-get (needs root).",
)
@click.option("--label", default=None, help="Name of this run in tables and plots. [default: the server's]")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write results JSON."
)
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write a PNG.")
@click.option(
    "--compare",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="A results JSON of an earlier run (or another server) to compare with; may repeat.",
)
def bench(  # one parameter per option
    *,
    model: str,
    url: str | None,
    protocol: str,
    model_version: str,
    concurrency: list[int],
    duration: int,
    warm_up: int,
    batch: int,
    data: Path | None,
    shape: tuple[str, ...],
    binary: bool,
    generator: str,
    install: bool,
    threads: int,
    label: str | None,
    out: Path | None,
    plot: Path | None,
    compare: tuple[Path, ...],
) -> None:
    """Measure throughput and latency of MODEL on a running server at each concurrency of a sweep.

    Speaks the Open Inference Protocol (KServe v2), so it benchmarks Triton too. Latency percentiles are
    the load generator's own per-request numbers; the queue/compute split is the server's statistics.
    """
    # What can be wrong with the arguments fails before the load, not after it.
    others = [read_run(path) for path in compare]
    _writable("--out", out)
    _writable("--plot", plot)
    if plot is not None:
        pyplot()
    batch_given = (
        click.get_current_context().get_parameter_source("batch") is click.core.ParameterSource.COMMANDLINE
    )
    address = url or f"localhost:{_DEFAULT_PORT[protocol]}"
    endpoint: Endpoint = HttpEndpoint(address) if protocol == "http" else GrpcEndpoint(address)
    try:
        server = endpoint.server_metadata()
        signature = signature_from_metadata(_model_metadata(endpoint, model, model_version))
        shapes = parse_shapes(shape, signature)
        if data is not None:
            if shapes:
                raise BenchError("--shape sets the shapes of random data: --data gives its own, drop one")
            tensors = load_tensors(data, signature)
            rows = batch_of(tensors, signature)
            if batch_given and rows != batch:
                raise BenchError(
                    f"--batch {batch} but --data {data} holds batches of {rows}: give one of them"
                )
            batch = rows
        else:
            tensors = generated_tensors(signature, batch=batch, shapes=shapes)
        plan = make_plan(endpoint, signature, tensors, model_version, binary=binary)
        plan.check()
        runner, generator_name, note = choose_generator(
            generator, protocol, plan, install=install, threads=threads
        )
        if note:
            Console(stderr=True).print(f"note: {note}", soft_wrap=True)
        run = BenchRun(
            label=label or f"{server.get('name', 'server')} {server.get('version', '')} {protocol}",
            model=model,
            version=model_version,
            url=endpoint.url,
            protocol=protocol,
            encoding=plan.encoding,
            batch=batch,
            duration_s=float(duration),
            warm_up_s=float(warm_up),
            generator=generator_name,
            generator_note=note,
            threads=threads,
            server={"name": server.get("name", ""), "version": server.get("version", "")},
            data=str(data) if data else "random",
            inputs=[
                {
                    "name": s.name,
                    "datatype": s.datatype,
                    "shape": list(s.shape),
                    "sent": list(tensors[s.name].shape),
                }
                for s in signature.inputs
            ],
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        run_sweep(
            run=run,
            endpoint=endpoint,
            runner=runner,
            levels=concurrency,
            seconds=duration,
            warm_up=warm_up,
            model=model,
            version=model_version,
        )
    finally:
        endpoint.close()
    console = Console(width=None if Console().is_terminal else 150)
    console.print(steps_table(run))
    if run.generator_note:
        console.print(f"note: {run.generator_note}", soft_wrap=True)
    if others:
        console.print(comparison_table(run, others))
    if out is not None:
        run.write(out)
        console.print(f"results written to {out}")
    if plot is not None:
        plot_runs([run, *others], plot)
        console.print(f"plot written to {plot}")


def _writable(option: str, path: Path | None) -> None:
    if path is not None and not path.parent.is_dir():
        raise BenchError(f"{option} {path}: folder {path.parent} does not exist")


def _model_metadata(endpoint: Endpoint, model: str, version: str) -> dict[str, Any]:
    try:
        return endpoint.model_metadata(model, version)
    except ServerUnreachable:
        raise
    except BenchError as error:
        what = f"model '{model}'" + (f" version '{version}'" if version else "")
        raise BenchError(f"{what} is not available: {error.message}") from None
