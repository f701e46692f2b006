"""``modelport convert``: the command-line face of :func:`modelport.converters.convert`.

Progress and tables go to stderr/stdout through rich; a failure prints one line naming the file and what to do
(plus the error table for a failed parity check) and exits non-zero; tracebacks only with ``--verbose``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from .api import convert as convert_model
from .cli_options import ATOL, MAX_BATCH_SIZE, OPSET, RTOL, VERBOSE, repository_option
from .custom_ops import parse_custom_op
from .errors import ConversionError, VerificationFailed
from .options import Framework, SavedModelOptions, SourceOptions, VerifyOptions
from .report import ConversionReport
from .sources import SourceKind, default_options, detect_kind
from .tensor_specs import check_unique, parse_input_spec

__all__ = ["convert"]


def _terminal() -> Console:
    # A private copy of stderr: while a framework runs, fds 1 and 2 are redirected to silence it, and progress
    # must still reach the terminal.
    return Console(
        file=os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", closefd=True),
        stderr=True,
        highlight=False,
    )


def _default_name(source: str) -> str:
    stem = source.rsplit(":", 1)[-1] if ":" in source and not Path(source).exists() else Path(source).stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "model"


def _summary(report: ConversionReport) -> Table:
    table = Table(title=f"{report.name} version {report.version}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", str(report.model_path))
    table.add_row("source", f"{report.source_kind} ({report.framework} {report.framework_version})")
    for spec in report.inputs:
        table.add_row("input", spec.describe())
    for spec in report.outputs:
        table.add_row("output", spec.describe())
    table.add_row(
        "max batch size", str(report.max_batch_size) if report.max_batch_size else "0 (fixed shapes)"
    )
    batches = ", ".join(str(b) for b in dict.fromkeys(e.batch_size for e in report.errors))
    table.add_row(
        "max error",
        f"abs {report.max_abs_error:.3g}, rel {report.max_rel_error:.3g} at batch {batches} "
        f"(tolerance atol {report.atol:g}, rtol {report.rtol:g})",
    )
    table.add_row("size", f"{report.onnx_bytes / 1024:.1f} KiB ONNX (opset {report.opset})")
    table.add_row("time", f"{report.seconds.get('total', 0.0):.1f} s")
    table.add_row("config", f"{report.config_path} ({'created' if report.config_created else 'kept'})")
    return table


def _mismatch_table(error: VerificationFailed) -> Table:
    table = Table(title="outputs beyond tolerance", title_justify="left")
    for column in ("output", "batch", "max abs error", "max rel error", "tolerance"):
        table.add_column(column, justify="left" if column == "output" else "right")
    for m in error.mismatches:
        table.add_row(
            m.output,
            str(m.batch_size),
            f"{m.max_abs_error:.3g}",
            f"{m.max_rel_error:.3g}",
            f"{m.atol:g} + {m.rtol:g}·|ref|",
        )
    return table


def _fail(console: Console, error: BaseException, verbose: bool, source: str) -> NoReturn:
    if verbose:
        console.print_exception()
    if isinstance(error, VerificationFailed) and error.mismatches:
        console.print(_mismatch_table(error))
    if isinstance(error, ConversionError):
        console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        sys.exit(error.exit_code)
    console.print(
        f"[bold red]error:[/] converting {source} failed unexpectedly ({type(error).__name__}: {error}); "
        "rerun with --verbose for the traceback",
        soft_wrap=True,
    )
    sys.exit(1)


def _options(
    *,
    source: str,
    inputs: tuple[str, ...],
    weights: Path | None,
    framework: str | None,
    opset: int | None,
    signature: str,
) -> SourceOptions:
    specs = tuple(parse_input_spec(text) for text in inputs)
    check_unique(specs)
    kind = detect_kind(source)
    chosen: Framework | None = framework  # type: ignore[assignment]  # click.Choice restricts the values
    options = default_options(
        kind, source=source, inputs=specs, weights=weights, framework=chosen, opset=opset
    )
    if kind is SourceKind.SAVED_MODEL:
        return SavedModelOptions(inputs=specs, signature=signature, opset=opset)
    return options


@click.command("convert")
@click.argument("source")
@click.option("--name", "-n", help="Model name in the repository (default: the source's file name).")
@repository_option()
@click.option(
    "--version", "version", type=click.IntRange(min=1), help="Version number (default: highest + 1)."
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME:DTYPE:DIMS",
    help=(
        "An input spec, features:float32:-1,12 (-1 = dynamic): required where the source lacks them"
        " (TorchScript, factories); for sources with their own (.pt2, SavedModel, built Keras) checked"
        " against theirs, in order, and may rename inputs and fix dynamic axes."
    ),
)
@click.option(
    "--weights", type=click.Path(path_type=Path), help="State dict / Keras weights for a factory source."
)
@click.option("--framework", type=click.Choice(["torch", "keras", "tensorflow"]), help="Expected framework.")
@click.option(
    "--signature", default="serving_default", show_default=True, help="SavedModel signature to convert."
)
@OPSET
@click.option(
    "--custom-op",
    "custom_ops",
    multiple=True,
    metavar="NAME=module:function",
    help=(
        "An ONNX function (onnxscript or onnx.FunctionProto) for an operator without a translation: a torch"
        " operator (ns::op) or an op an exporter left undefined (e.g. Lgamma). Repeatable."
    ),
)
@ATOL
@RTOL
@click.option(
    "--samples", type=click.Path(path_type=Path), help="An .npz of verification inputs keyed by input name."
)
@MAX_BATCH_SIZE
@VERBOSE
def convert(
    *,
    source: str,
    name: str | None,
    repository: Path,
    version: int | None,
    inputs: tuple[str, ...],
    weights: Path | None,
    framework: str | None,
    signature: str,
    opset: int | None,
    custom_ops: tuple[str, ...],
    atol: float,
    rtol: float,
    samples: Path | None,
    max_batch_size: int,
    verbose: bool,
) -> None:
    """Convert SOURCE to a verified ONNX model in a model repository.

    SOURCE is a torch.export program (.pt2), TorchScript (.pt), package.module:factory returning an nn.Module
    or a Keras model, a Keras file (.keras, .h5) or a TensorFlow SavedModel directory.
    """
    console = _terminal()
    out = Console(highlight=False)
    if verbose:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logging.getLogger("modelport.converters").addHandler(handler)
        logging.getLogger("modelport.converters").setLevel(logging.DEBUG)
    model_name = name or _default_name(source)
    step: list[tuple[str, float]] = []

    def progress(text: str) -> None:
        now = time.perf_counter()
        if step:
            previous, began = step[-1]
            console.print(f"[green]✓[/] {previous} [dim]({now - began:.1f} s)[/]")
        step.append((text, now))
        status.update(f"{text} ...")

    try:
        options = _options(
            source=source,
            inputs=inputs,
            weights=weights,
            framework=framework,
            opset=opset,
            signature=signature,
        )
        verification = VerifyOptions(atol=atol, rtol=rtol, samples=samples)
        functions = tuple(parse_custom_op(text) for text in custom_ops)
        with console.status(f"Converting {source} ...") as status:
            report = convert_model(
                source,
                repository=repository,
                name=model_name,
                version=version,
                options=options,
                verification=verification,
                max_batch_size=max_batch_size,
                progress=progress,
                custom_ops=functions,
                quiet=not verbose,
            )
            progress("done")
    except Exception as error:
        _fail(console, error, verbose, source)
    out.print(_summary(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
