"""The ``modelport`` command.

``serve`` lives with the server; ``convert``, ``quantize`` and ``export-mobile`` live in
``modelport.converters`` and are imported only when invoked, so the server's environment needs neither torch
nor TensorFlow and ``modelport serve`` starts fast.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

# command name -> ("module:attribute" of a click command, imported on first use; one-line help).
_LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("modelport.server.serve_cli:serve", "Serve a model repository over REST and gRPC."),
    "bench": (
        "modelport.server.bench.command:bench",
        "Benchmark a model on a running server (ours or Triton): a concurrency sweep.",
    ),
    "doctor": (
        "modelport.server.doctor:doctor",
        "Check this machine and a model repository before serving; exit 1 on a problem.",
    ),
    "convert": ("modelport.converters.cli:convert", "Convert a Keras, TensorFlow or PyTorch model to ONNX."),
    "convert-repository": (
        "modelport.converters.tfserving_cli:convert_repository",
        "Convert a TF Serving model base path (every model and version) into a repository.",
    ),
    "import-mar": (
        "modelport.converters.mar_cli:import_mar",
        "Convert a TorchServe model archive (.mar) to ONNX in a model repository.",
    ),
    "quantize": ("modelport.converters.quantize.cli:quantize", "Quantize a model to INT8 or FP16."),
    "export-mobile": (
        "modelport.converters.quantize.cli:export_mobile",
        "Export a model in ONNX Runtime's mobile .ort format.",
    ),
}


# What to install for a command whose packages are missing (the serving environment has none of them).
_EXTRAS = {
    "convert": (
        "pip install 'modelport[torch]' (PyTorch models) or 'modelport[tensorflow]' (Keras and TensorFlow "
        "models)"
    ),
    "convert-repository": "pip install 'modelport[tensorflow]'",
    "import-mar": "pip install 'modelport[torch]'",
    "quantize": "pip install 'modelport[convert]'",
    "bench": "pip install 'modelport[bench]'",
    "export-mobile": "pip install 'modelport[convert]'",
}


def _missing_extras(name: str, summary: str, error: ImportError) -> click.Command:
    """A stand-in for command ``name`` when its packages are not installed: ``--help`` says what to install
    and exits 0; running it fails (exit 1) naming the missing package and the install command."""
    hint = _EXTRAS.get(name, "pip install 'modelport[all]'")

    def refuse(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"'modelport {name}' needs packages that are not installed ({error.name}); install them: {hint}"
        )

    return click.Command(
        name,
        callback=refuse,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
        help=f"{summary}\n\nNot installed here ({error.name} is missing): {hint}, then see its options with "
        f"'modelport {name} --help'.",
        short_help=summary,
    )


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _LAZY_COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            return _missing_extras(cmd_name, entry[1], error)
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing the commands must not import them (and with them torch or TensorFlow).
        rows = [(name, help_text) for name, (_, help_text) in sorted(_LAZY_COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelport")
def main() -> None:
    """Convert trained models to ONNX and serve them over REST and gRPC."""
