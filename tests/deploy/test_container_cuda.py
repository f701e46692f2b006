"""The CUDA variant (``--build-arg VARIANT=cuda``) as far as it goes without its base image and a GPU.

Its base (``nvidia/cuda``) cannot be pulled here, so the variant is checked in parts: the builder stage
(built by podman) writes requirements that differ from the CPU ones only in ``onnxruntime-gpu``, and those
resolve to wheels for the CUDA base's Python; the framework guard the runtime stage ends with fails where a
framework is installed. On a machine with an NVIDIA GPU and a reachable registry, the last test builds the
CUDA image and checks that the CUDA provider is what ``/config`` reports. (The CPU image asked for CUDA
falls back with one log line: ``test_container.py``.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import BuiltImage
from tests.deploy.container_engine import Engine
from tests.deploy.cuda_wheels import cuda_base_image, resolve_cuda_wheels
from tests.deploy.image_config import read_stages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
FRAMEWORKS = {"torch", "tensorflow", "tensorflow-cpu", "keras", "tf2onnx"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _requirements(text: str) -> dict[str, str]:
    """normalized name -> the requirement line."""
    found = {}
    for line in text.splitlines():
        name = line.split(";")[0]
        for separator in "[<>=!~ ":
            name = name.split(separator)[0]
        found[_normalized(name)] = line
    return found


def _onnxruntime_gpu_spec() -> str:
    """The default of the ``ONNXRUNTIME_GPU`` build argument (the GPU wheel the CUDA variant installs)."""
    for stage in read_stages(DOCKERFILE):
        for instruction, value in stage.instructions:
            if instruction == "ARG" and value.startswith("ONNXRUNTIME_GPU="):
                return value.split("=", 1)[1]
    raise AssertionError("the Dockerfile declares no ARG ONNXRUNTIME_GPU")


def _dist_file(builder: BuiltImage, name: str) -> str:
    return builder.engine.run_image(builder.tag, f"/dist/{name}", entrypoint="cat").stdout


def test_the_cuda_variant_swaps_onnxruntime_for_onnxruntime_gpu(builder_image: BuiltImage) -> None:
    cpu = _requirements(_dist_file(builder_image, "requirements-cpu.txt"))
    cuda = _requirements(_dist_file(builder_image, "requirements-cuda.txt"))
    assert "onnxruntime" in cpu
    assert "onnxruntime-gpu" not in cpu
    assert cuda.pop("onnxruntime-gpu") == _onnxruntime_gpu_spec()
    assert "onnxruntime" not in cuda
    del cpu["onnxruntime"]
    assert cuda == cpu, "the variants differ in more than onnxruntime"
    assert not FRAMEWORKS & set(cpu)


def test_the_cuda_wheels_resolve_for_the_cuda_base_images_python(
    builder_image: BuiltImage, capsys: pytest.CaptureFixture[str]
) -> None:
    base = cuda_base_image()
    wheels = {
        _normalized(name): version
        for name, version in resolve_cuda_wheels(builder_image.engine, builder_image.tag, base).items()
    }
    with capsys.disabled():
        print(f"\n[container] CUDA variant: {len(wheels)} wheels resolve for {base}")
    assert wheels["onnxruntime-gpu"] == _onnxruntime_gpu_spec().split("==")[1]
    assert "onnxruntime" not in wheels, "onnxruntime-gpu would be installed beside onnxruntime"
    assert not FRAMEWORKS & set(wheels)


def test_the_framework_guard_of_the_image_fails_where_a_framework_is_installed() -> None:
    """The runtime stage's last check exits non-zero in an environment with torch (the test suite's own):
    the image build never shows that branch, since the image has no framework."""
    guard = next(
        command.split("&&")[-1].strip()
        for stage in read_stages(DOCKERFILE)
        for command in stage.runs
        if "find_spec" in command
    )
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    result = subprocess.run(
        ["/bin/sh", "-c", guard], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "torch" in result.stderr


def _gpu() -> str | None:
    """Why the CUDA image cannot run here, or None."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU here (nvidia-smi is missing)"
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=False)
    return None if probe.returncode == 0 and "GPU" in probe.stdout else f"nvidia-smi -L: {probe.stderr}"


def test_the_cuda_image_serves_with_the_cuda_provider_on_a_gpu(podman: Engine, tmp_path: Path) -> None:
    """Needs a GPU, the NVIDIA container toolkit's CDI spec and a registry serving ``nvidia/cuda``."""
    reason = _gpu()
    if reason is not None:
        pytest.skip(reason)
    tag = "localhost/modelport-test-cuda:gpu"
    podman.build(tag, variant="cuda", python_image=None)
    repository = tmp_path / "repository"
    shutil.copytree(ROOT / "models" / "mlp", repository / "mlp")
    with (repository / "mlp" / "config.yaml").open("a") as config_file:
        config_file.write("execution_providers: [cuda, cpu]\n")
    repository.chmod(0o755)
    try:
        options = ("--device", "nvidia.com/gpu=all", "-v", f"{repository}:/models:ro")
        with podman.container(tag, *options) as container:
            container.wait_for_log("modelport ready in", timeout=300)
            config = httpx.get(f"http://{container.address(8000)}/v2/models/mlp/config", timeout=30).json()
    finally:
        podman.remove_image(tag)
    assert config["parameters"]["execution_provider"]["string_value"] == "cuda", config
