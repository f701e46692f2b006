"""``modelport import-mar``: a TorchServe ``.mar`` into the model repository (:func:`.mar_import.import_mar`),
with ``convert``'s progress, summary and ``error:`` lines, then what the archive's handler did that the ONNX
model does not."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

from . import cli
from .cli_options import ATOL, MAX_BATCH_SIZE, OPSET, RTOL, VERBOSE, repository_option
from .mar_import import import_mar as import_archive
from .options import VerifyOptions
from .tensor_specs import check_unique, parse_input_spec

__all__ = ["import_mar"]


@click.command("import-mar")
@click.argument("archive", type=click.Path(path_type=Path))
@repository_option()
@click.option("--name", "-n", help="Model name in the repository (default: the manifest's modelName).")
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    help="Version number (default: the manifest's modelVersion when a whole number, else highest + 1).",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    required=True,
    metavar="NAME:DTYPE:DIMS",
    help="An input spec, image:float32:-1,3,224,224 (-1 = dynamic), in forward() order: required.",
)
@OPSET
@ATOL
@RTOL
@MAX_BATCH_SIZE
@VERBOSE
def import_mar(
    *,
    archive: Path,
    repository: Path,
    name: str | None,
    version: int | None,
    inputs: tuple[str, ...],
    opset: int | None,
    atol: float,
    rtol: float,
    max_batch_size: int,
    verbose: bool,
) -> None:
    """Convert a TorchServe model archive (.mar) to a verified ONNX model in a model repository.

    A TorchScript serialized file converts directly; an eager model (model.py + state dict) is built from
    the archive's model class (its code runs now, in this process; custom handler code never runs). The
    handler's pre- and post-processing is reported, not converted.
    """
    console = cli._terminal()
    out = Console(highlight=False)
    step: list[tuple[str, float]] = []

    def progress(text: str) -> None:
        now = time.perf_counter()
        if step:
            previous, began = step[-1]
            console.print(f"[green]✓[/] {previous} [dim]({now - began:.1f} s)[/]")
        step.append((text, now))
        status.update(f"{text} ...")

    try:
        specs = tuple(parse_input_spec(text) for text in inputs)
        check_unique(specs)
        with console.status(f"Importing {archive} ...") as status:
            done = import_archive(
                archive,
                repository=repository,
                inputs=specs,
                name=name,
                version=version,
                opset=opset,
                verification=VerifyOptions(atol=atol, rtol=rtol),
                max_batch_size=max_batch_size,
                progress=progress,
                quiet=not verbose,
            )
            progress("done")
    except Exception as error:
        cli._fail(console, error, verbose, str(archive))
    out.print(cli._summary(done.report))
    handler = done.handler
    out.print(
        f"archive: {done.path} model, handler {done.archive.handler or '(none)'} ({handler.kind})",
        soft_wrap=True,
    )
    out.print(f"  the handler did before the model: {handler.before}", soft_wrap=True)
    out.print(f"  and after it: {handler.after}", soft_wrap=True)
    out.print(f"  left to you: {handler.instead}", soft_wrap=True)
    if done.labels_path is not None:
        out.print(f"  labels: {done.labels_path} (from index_to_name.json)")
    if done.unused:
        out.print(f"  not used (the handler's own files): {', '.join(done.unused)}", soft_wrap=True)
    for note in done.report.notes:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
