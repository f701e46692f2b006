"""Train every example model and convert it into the model repository (``make models``).

    python examples/build_models.py [--repository models] [--only NAME ...]

Each recipe rebuilds ``REPOSITORY/NAME`` from scratch as version 1 (the directory is replaced as a whole, so
no stale file survives), prints its validation figure, and the run ends with a summary table. Needs the
converter extras (torch, TensorFlow): ``pip install -e '.[torch,tensorflow,test]'``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

# Run as a script, Python puts examples/ itself on the path, not the checkout; the recipes import `examples.*`
# (and tf2onnx installs an unrelated `examples` namespace into site-packages that would otherwise win).
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Most of TensorFlow's C++ notices would bury the progress lines (absl's first lines still pass).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from examples.publish import DEFAULT_REPOSITORY, Built, workdir_for  # noqa: E402  (needs the path set above)

__all__ = ["RECIPES", "build_all", "main"]

# model name -> recipe module (each has build(workdir, repository) -> Built); imported one at a time, so a
# run with --only loads only the framework it needs.
RECIPES: dict[str, str] = {
    "mlp": "examples.mlp_torch",
    "digits": "examples.digits_torch",
    "denoiser": "examples.denoiser_torch",
    "sentiment": "examples.sentiment_keras",
    "waveform": "examples.waveform_tensorflow",
}


def build_all(repository: Path, names: list[str]) -> tuple[list[tuple[Built, float]], list[str]]:
    """Build the named models in order. Returns each result with the seconds it took, and the names whose
    conversion failed (reported, the others still built; the failed ones keep their previous version)."""
    from modelport.converters import ConversionError

    results: list[tuple[Built, float]] = []
    failed: list[str] = []
    for position, name in enumerate(names, start=1):
        print(f"[{position}/{len(names)}] {name} ({RECIPES[name]})", flush=True)
        started = time.monotonic()
        recipe = importlib.import_module(RECIPES[name])
        try:
            built: Built = recipe.build(workdir_for(name), repository)
        except ConversionError as error:
            print(f"error: {name}: {error}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        results.append((built, time.monotonic() - started))
    return results, failed


def _summary(results: list[tuple[Built, float]]) -> str:
    lines = [f"{'model':<10} {'metric':<42} {'value':>8} {'onnx KB':>8} {'seconds':>8}"]
    for built, seconds in results:
        size = (built.directory / "1" / "model.onnx").stat().st_size / 1024
        lines.append(f"{built.name:<10} {built.metric:<42} {built.value:>8.4f} {size:>8.1f} {seconds:>8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Train the example models and convert them into a repository."
    )
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY, help="default: models/")
    parser.add_argument("--only", nargs="+", choices=sorted(RECIPES), help="build only these models")
    arguments = parser.parse_args(argv)
    names = [name for name in RECIPES if not arguments.only or name in arguments.only]
    started = time.monotonic()
    results, failed = build_all(arguments.repository, names)
    print(_summary(results))
    others = sorted(
        path.name for path in arguments.repository.iterdir() if path.is_dir() and path.name not in RECIPES
    )
    if others:
        print(f"note: {arguments.repository} also holds {', '.join(others)}, which no recipe builds")
    print(f"built {len(results)} model(s) into {arguments.repository} in {time.monotonic() - started:.0f} s")
    if failed:
        print(f"error: {len(failed)} conversion(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
