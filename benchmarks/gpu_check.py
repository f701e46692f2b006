"""Prove that the server's session code runs a model on the GPU (CUDAExecutionProvider); run by hand.

Run it where ``onnxruntime-gpu`` is installed (the CUDA image: ``docker run --gpus all --entrypoint python
modelport:0.1.0-cuda /opt/gpu_check.py`` after copying it in, or a venv with ``onnxruntime-gpu``)::

    python benchmarks/gpu_check.py [--repository models | --model PATH/model.onnx] [--batch 8] [--runs 50]

It opens the model through ``modelport.server.workers.session.open_session`` with
``execution_providers [cuda, cpu]`` (what a model's ``config.yaml`` asks for), prints the providers the
session really uses, and times the same inputs on CUDA and on a CPU-only session, checking both give the
same outputs. Exit codes:

* 0: CUDA is active and the outputs agree; or there is nothing to check here (the onnxruntime build has no
  CUDA provider, or the machine has no NVIDIA GPU): it says which and does not pretend otherwise.
* 1: a GPU and a CUDA-enabled onnxruntime are present but the session fell back to CPU (missing CUDA/cuDNN
  libraries, driver too old...), or the CUDA outputs differ from the CPU ones.
* 2: bad arguments (no model found, both onnxruntime and onnxruntime-gpu installed).

Not part of the test suite: the project's machines have no GPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from modelport.server.datatypes import by_name
from modelport.server.inference import TensorSpec
from modelport.server.model_config import SessionConfig
from modelport.server.workers.session import OpenSession, open_session

__all__ = ["main"]

_NVIDIA_DEVICE = Path("/dev/nvidiactl")


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _find_model(repository: Path) -> Path | None:
    """The newest version of the first model (by name) with a model.onnx in a Triton-layout repository."""
    for model_dir in sorted(path for path in repository.iterdir() if path.is_dir()):
        versions = sorted(
            (int(path.name), path) for path in model_dir.iterdir() if path.name.isdigit() and path.is_dir()
        )
        for _, version_dir in reversed(versions):
            if (version_dir / "model.onnx").is_file():
                return version_dir / "model.onnx"
    return None


def _inputs(specs: tuple[TensorSpec, ...], batch: int, seed: int) -> dict[str, npt.NDArray[Any]]:
    """Random inputs: the first dynamic dimension is the batch, other dynamic dimensions are 8."""
    generator = np.random.default_rng(seed)
    feeds: dict[str, npt.NDArray[Any]] = {}
    for spec in specs:
        shape = [
            batch if index == 0 and dim < 0 else (8 if dim < 0 else dim)
            for index, dim in enumerate(spec.shape)
        ]
        dtype = by_name(spec.datatype, tensor=spec.name).numpy
        if spec.datatype == "BYTES":
            raise SystemExit(f"input '{spec.name}' is BYTES: pick a model with numeric inputs (--model)")
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = generator.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[spec.name] = generator.integers(0, 2, shape).astype(dtype)
        else:
            feeds[spec.name] = generator.integers(0, 10, shape).astype(dtype)
    return feeds


def _time(
    opened: OpenSession, feeds: dict[str, npt.NDArray[Any]], runs: int
) -> tuple[list[Any], list[float]]:
    outputs: list[Any] = opened.session.run(None, feeds)  # warm-up: CUDA kernels, cuDNN algorithm search
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        outputs = opened.session.run(None, feeds)
        latencies.append((time.perf_counter() - started) * 1000.0)
    return outputs, latencies


def _summary(label: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    mean, p50 = statistics.fmean(ordered), statistics.median(ordered)
    return f"{label:>5}: mean {mean:8.3f} ms  p50 {p50:8.3f} ms  p90 {p90:8.3f} ms"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the check, print what was found; returns the exit code described above."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--repository", type=Path, default=Path("models"), help="model repository to pick from"
    )
    parser.add_argument("--model", type=Path, help="a model.onnx (default: the first model in --repository)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)

    import onnxruntime as ort

    cpu_build, gpu_build = _installed("onnxruntime"), _installed("onnxruntime-gpu")
    print(
        f"onnxruntime {ort.__version__} (distributions: onnxruntime={cpu_build}, onnxruntime-gpu={gpu_build})"
    )
    if cpu_build and gpu_build:
        print("both onnxruntime and onnxruntime-gpu are installed; they shadow each other: keep only one")
        return 2
    available = ort.get_available_providers()
    print(f"providers in this build: {available}")
    if "CUDAExecutionProvider" not in available:
        print("CPU-only onnxruntime build: nothing to check here (install onnxruntime-gpu on a GPU machine)")
        return 0
    if not _NVIDIA_DEVICE.exists():
        print(f"no NVIDIA GPU visible ({_NVIDIA_DEVICE} missing): nothing to check here")
        return 0

    model = args.model or _find_model(args.repository)
    if model is None or not model.is_file():
        print(f"no model.onnx found (--model {args.model}, --repository {args.repository})")
        return 2
    print(f"model: {model}")

    started = time.perf_counter()
    on_gpu = open_session(
        model, model=model.parent.parent.name, config=SessionConfig(), providers=("cuda", "cpu")
    )
    load_ms = (time.perf_counter() - started) * 1000.0
    print(f"session providers: {on_gpu.session.get_providers()}  active: {on_gpu.provider}")
    print(f"session load: {load_ms:.0f} ms")
    if on_gpu.provider != "cuda":
        print("FAIL: a GPU is present but CUDAExecutionProvider is not active (see the warning above)")
        return 1

    on_cpu = open_session(model, model=model.parent.parent.name, config=SessionConfig(), providers=("cpu",))
    feeds = _inputs(on_gpu.inputs, args.batch, seed=0)
    gpu_outputs, gpu_latencies = _time(on_gpu, feeds, args.runs)
    cpu_outputs, cpu_latencies = _time(on_cpu, feeds, args.runs)
    print(f"batch {args.batch}, {args.runs} runs each:")
    print(_summary("cuda", gpu_latencies))
    print(_summary("cpu", cpu_latencies))
    ratio = statistics.fmean(cpu_latencies) / statistics.fmean(gpu_latencies)
    print(f"cpu/cuda mean latency ratio: {ratio:.2f}")
    worst = 0.0
    for spec, gpu_out, cpu_out in zip(on_gpu.outputs, gpu_outputs, cpu_outputs, strict=True):
        if np.issubdtype(np.asarray(gpu_out).dtype, np.number):
            difference = float(
                np.max(np.abs(np.asarray(gpu_out, np.float64) - np.asarray(cpu_out, np.float64)))
            )
            print(f"output {spec.name}: max |cuda - cpu| = {difference:.3g}")
            worst = max(worst, difference)
    if worst > 1e-2:
        print("FAIL: CUDA and CPU outputs differ by more than 1e-2")
        return 1
    print("OK: CUDAExecutionProvider is active and agrees with CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
