"""Resolve the CUDA variant's wheels without its base image (``nvidia/cuda`` cannot be pulled here).

The Dockerfile's builder stage writes ``/dist/requirements-cuda.txt``; this runs pip's resolver
(``pip install --dry-run --report``) on it inside that builder image, for the Python and glibc of the CUDA
base image's Ubuntu release (read from the Dockerfile's ``CUDA_IMAGE`` default), binary wheels only: what
the CUDA image's ``pip install`` would pick. Standard library only, like :mod:`.container_engine`
(``make image-cuda-check`` runs it before any virtual environment exists).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tests.deploy.container_engine import ROOT, Engine, ca_bundle, engine

__all__ = ["UBUNTU_PYTHON", "cuda_base_image", "resolve_cuda_wheels"]

# Ubuntu release -> (its python3, its glibc minor): the interpreter and manylinux tags the CUDA image has.
UBUNTU_PYTHON = {"ubuntu24.04": ("3.12", 39), "ubuntu22.04": ("3.10", 35)}
_CUDA_IMAGE = re.compile(r"^ARG CUDA_IMAGE=(\S+)", re.MULTILINE)


def cuda_base_image(dockerfile: Path = ROOT / "Dockerfile") -> str:
    """The default of the Dockerfile's ``CUDA_IMAGE`` build argument."""
    match = _CUDA_IMAGE.search(dockerfile.read_text())
    if match is None:
        raise ValueError(f"{dockerfile} declares no ARG CUDA_IMAGE=...")
    return match.group(1)


def _target(base: str) -> tuple[str, int]:
    for release, target in UBUNTU_PYTHON.items():
        if base.endswith(release):
            return target
    raise ValueError(f"CUDA base image {base}: unknown Ubuntu release (known: {sorted(UBUNTU_PYTHON)})")


def resolve_cuda_wheels(podman: Engine, builder: str, base: str) -> dict[str, str]:
    """Name -> version pip picks for *builder*'s ``/dist/requirements-cuda.txt`` on *base*'s Python;
    ``CalledProcessError`` (pip's message in it) when something does not resolve."""
    python, glibc = _target(base)
    # pip 23 (the builder's) does not widen one manylinux tag to the older ones a glibc also runs: list them.
    platforms = [f"--platform=manylinux_2_{minor}_x86_64" for minor in range(glibc, 16, -1)]
    bundle = ca_bundle()
    trust = ["-v", f"{bundle}:/run/secrets/pip-ca:ro", "-e", "PIP_CERT=/run/secrets/pip-ca"] if bundle else []
    command = (
        # The report goes to a file: pip's own warnings (a yanked release) share its stdout.
        "/opt/build/bin/python -m pip install -q --disable-pip-version-check --dry-run --ignore-installed "
        f"--only-binary=:all: --python-version {python} {' '.join(platforms)} "
        "--target /tmp/resolved --report /tmp/report.json -r /dist/requirements-cuda.txt "
        "&& cat /tmp/report.json"
    )
    options = ["--network", "host", *trust]
    report = podman.run_image(
        builder, "-c", command, entrypoint="/bin/sh", options=options, timeout=600
    ).stdout
    installed = json.loads(report[report.index("{") :])["install"]
    return {item["metadata"]["name"]: item["metadata"]["version"] for item in installed}


def main() -> int:
    """``make image-cuda-check``: build the builder stage, resolve the CUDA wheels, print them."""
    podman = engine()
    tag = "localhost/modelport-builder:cuda-check"
    podman.build(tag, variant="cuda", target="builder", echo=True)
    try:
        base = cuda_base_image()
        wheels = resolve_cuda_wheels(podman, tag, base)
    finally:
        podman.remove_image(tag)
    for name, version in sorted(wheels.items()):
        print(f"{name}=={version}")
    print(f"{len(wheels)} wheels resolve for {base} (Python {_target(base)[0]})")
    return 0 if "onnxruntime-gpu" in wheels and "onnxruntime" not in wheels else 1


if __name__ == "__main__":
    sys.exit(main())
