"""``modelport convert-repository --from tfserving``: a TF Serving model base (or the models a
``--model-config-file`` names) converted into a modelport repository, version numbers kept
(:mod:`.tfserving_repository`). Prints one row per version; exits 1 when any version failed (each failure's
reason is in its row), 0 when all converted."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .cli_options import repository_option
from .errors import ConversionError
from .tfserving_repository import convert_tfserving, models_from_config, models_in_base

__all__ = ["convert_repository"]


@click.command("convert-repository")
@click.argument("base", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--from",
    "origin",
    type=click.Choice(["tfserving"]),
    required=True,
    help="The server the repository comes from: tfserving (BASE/MODEL/VERSION/saved_model.pb).",
)
@repository_option("The modelport repository to write.")
@click.option(
    "--model-config-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TF Serving's ModelServerConfig (text format) naming the models and their base paths.",
)
def convert_repository(
    base: Path | None, origin: str, repository: Path, model_config_file: Path | None
) -> None:
    """Convert every version of every model of a TF Serving base path (or --model-config-file) to ONNX."""
    console = Console(stderr=True, highlight=False)
    try:
        if base is not None and model_config_file is None:
            models = models_in_base(base)
        elif model_config_file is not None and base is None:
            models = models_from_config(model_config_file)
        else:
            raise click.UsageError(
                "give BASE (a TF Serving model base path) or --model-config-file, not both"
            )
    except ConversionError as error:
        console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        sys.exit(error.exit_code)
    results = convert_tfserving(models, repository=repository, progress=console.print)
    table = Table(title=f"{origin} -> {repository}", title_justify="left")
    for column in ("model", "version", "result"):
        table.add_column(column)
    for result in results:
        outcome = f"{result.report.model_path}" if result.report else f"[red]error:[/] {result.error}"
        table.add_row(result.name, str(result.version), outcome)
    Console(highlight=False, soft_wrap=True).print(table)
    failed = [r for r in results if r.error is not None]
    for result in failed:
        console.print(f"[bold red]error:[/] {result.source}: {result.error}", soft_wrap=True)
    sys.exit(1 if failed else 0)
