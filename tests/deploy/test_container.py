"""The serving image's behaviour, without a Docker engine (none runs on the project's machines).

The wheel is built from what the Dockerfile's builder stage copies, installed into a fresh virtual environment
through the same requirements script and steps as the image, and then the Dockerfile's own ENTRYPOINT + CMD
run with its ENV (read from the Dockerfile, so they cannot drift) against ``models/``, the image's default
repository. Only what a container cannot have here is changed, and each change is named: the image's venv
path becomes the test venv, ``/models`` becomes ``models/``, and the listeners move to 127.0.0.1 ephemeral
ports through the same ``MODELPORT_*`` variables the image sets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.settings import ServerSettings
from tritonclient.utils import triton_to_np_dtype

from tests.deploy.image_config import ImageConfig, Stage, read_stages, stage_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS_SCRIPT = ROOT / "deploy" / "docker" / "serving_requirements.py"
# Distributions a serving environment must never contain (the frameworks and what only converting needs).
FRAMEWORKS = {
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tf-keras",
    "keras",
    "tf2onnx",
    "jax",
}
# ~250 MB expected (shared/reference/dependencies.md); a framework alone would be 0.75-1.3 GB.
MAX_ENVIRONMENT_BYTES = 400 * 2**20
INSTALL_TIMEOUT_S = 600
READY_TIMEOUT_S = 120

pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT_S + 300)]


@dataclass(frozen=True)
class ServingEnvironment:
    """A fresh venv holding the built wheel and its serving requirements, as the image's runtime stage has."""

    venv: Path
    wheel: Path
    requirements: dict[str, Path]  # variant ("cpu", "cuda") -> requirements file
    distributions: dict[str, str]  # normalized name -> version
    size_bytes: int
    seconds: float


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _clean_env() -> dict[str, str]:
    """The current environment minus what would tie a subprocess to the test's own virtual environment."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")
    }


def _run(command: list[str], *, timeout: float, cwd: Path | None = None) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_clean_env(), check=False
    )
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def _builder_stage() -> Stage:
    """The stage that builds the wheel (the one whose RUN calls ``pip wheel``)."""
    stages = [stage for stage in read_stages(DOCKERFILE) if any("pip wheel" in run for run in stage.runs)]
    assert len(stages) == 1, "the Dockerfile should build the wheel in exactly one stage"
    return stages[0]


def _stage_context(stage: Stage, workdir: Path) -> None:
    """Copy what *stage*'s ``COPY`` instructions take from the build context into *workdir*, as Docker does
    (a folder's contents into the destination; files into a destination ending in ``/``). Absolute
    destinations, like the requirements script's, are not needed to build the wheel."""
    for copy in stage.copies:
        if copy.from_stage is not None or copy.destination.startswith("/"):
            continue
        target = workdir / copy.destination
        for source in copy.sources:
            origin = ROOT / source
            assert origin.exists(), f"the Dockerfile copies {source}, which is not in the repository"
            if origin.is_dir():
                shutil.copytree(
                    origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            elif copy.destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
            else:
                shutil.copy2(origin, target)


def _tree_size(path: Path) -> int:
    return sum(
        entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink()
    )


@pytest.fixture(scope="session")
def serving_env(tmp_path_factory: pytest.TempPathFactory) -> ServingEnvironment:
    """Build the wheel and install it the way the image does; once per test session."""
    started = time.monotonic()
    work = tmp_path_factory.mktemp("container")
    source = work / "src"
    source.mkdir()
    _stage_context(_builder_stage(), source)
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        timeout=INSTALL_TIMEOUT_S,
    )
    (wheel,) = dist.glob("modelport-*.whl")
    requirements = {}
    for variant, extra in (("cpu", []), ("cuda", ["--onnxruntime", _onnxruntime_gpu_spec()])):
        lines = _run([sys.executable, str(REQUIREMENTS_SCRIPT), str(wheel), *extra], timeout=60)
        requirements[variant] = dist / f"requirements-{variant}.txt"
        requirements[variant].write_text(lines)
    venv = work / "venv"
    # A truly fresh environment: no --system-site-packages, nothing from the test's own venv.
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "-r", str(requirements["cpu"])], timeout=INSTALL_TIMEOUT_S)
    _run([*pip, "--no-deps", str(wheel)], timeout=INSTALL_TIMEOUT_S)
    listing = _run(
        [
            python,
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        timeout=60,
    )
    distributions = {_normalized(name): version for name, version in json.loads(listing).items()}
    return ServingEnvironment(
        venv=venv,
        wheel=wheel,
        requirements=requirements,
        distributions=distributions,
        size_bytes=_tree_size(venv),
        seconds=time.monotonic() - started,
    )


def _onnxruntime_gpu_spec() -> str:
    """The ``ONNXRUNTIME_GPU`` build argument's default in the builder stage."""
    for instruction, value in _builder_stage().instructions:
        if instruction == "ARG" and value.startswith("ONNXRUNTIME_GPU="):
            return value.split("=", 1)[1]
    raise AssertionError("the builder stage declares no ARG ONNXRUNTIME_GPU")


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        name = line.split(";")[0]
        for separator in "[<>=!~ ":
            name = name.split(separator)[0]
        names.add(_normalized(name))
    return names


# --- the environment ---------------------------------------------------------------------------------------


def test_the_serving_environment_holds_no_framework(
    serving_env: ServingEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    size_mb = serving_env.size_bytes / 2**20
    with capsys.disabled():
        print(
            f"\n[container] serving venv: {size_mb:.0f} MiB, {len(serving_env.distributions)} distributions, "
            f"built and installed in {serving_env.seconds:.1f} s; wheel {serving_env.wheel.name} "
            f"({serving_env.wheel.stat().st_size / 1024:.0f} KiB)"
        )
    got_in = FRAMEWORKS & set(serving_env.distributions)
    assert not got_in, f"the serving environment contains {sorted(got_in)}"
    assert "onnxruntime" in serving_env.distributions
    assert "onnxruntime-gpu" not in serving_env.distributions, "onnxruntime and onnxruntime-gpu together"
    assert serving_env.size_bytes < MAX_ENVIRONMENT_BYTES, f"serving environment grew to {size_mb:.0f} MiB"


def test_the_cuda_variant_swaps_onnxruntime_for_onnxruntime_gpu(serving_env: ServingEnvironment) -> None:
    cpu = _requirement_names(serving_env.requirements["cpu"])
    cuda = _requirement_names(serving_env.requirements["cuda"])
    assert "onnxruntime" in cpu
    assert "onnxruntime-gpu" not in cpu
    assert cuda == (cpu - {"onnxruntime"}) | {"onnxruntime-gpu"}, (
        "the variants differ in more than onnxruntime"
    )
    assert not FRAMEWORKS & (cpu | cuda)


# --- the image's command ------------------------------------------------------------------------------------


@dataclass
class Container:
    """The image's command running on this machine, with what it reported in its ready file."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    ports: dict[str, Any]
    log: Path
    ready_s: float = 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _image_venv(image: ImageConfig) -> PurePosixPath:
    """The image's virtual environment: the folder above the first PATH entry (``/opt/modelport/bin``)."""
    first = image.env["PATH"].split(":")[0]
    assert first.endswith("/bin"), f"the image's PATH should start with its venv's bin folder, not {first}"
    return PurePosixPath(first).parent


def _container_env(image: ImageConfig, venv: Path, overrides: dict[str, str]) -> dict[str, str]:
    """The image's ENV on top of this machine's environment; the image venv's PATH entries point at *venv*."""
    image_venv = str(_image_venv(image))
    path = [entry.replace(image_venv, str(venv), 1) for entry in image.env["PATH"].split(":") if entry]
    env = {**_clean_env(), **image.env, **overrides}
    env["PATH"] = os.pathsep.join([*path, os.environ.get("PATH", "")])
    return env


def _container_command(image: ImageConfig, repository: Path) -> list[str]:
    (volume,) = image.volumes
    return [str(repository) + argument[len(volume) :] if argument.startswith(volume) else argument
            for argument in image.command]  # fmt: skip


def _healthcheck(image: ImageConfig, env: dict[str, str]) -> int:
    """Run the image's HEALTHCHECK command; its exit code (Docker: 0 healthy, 1 unhealthy)."""
    timeout = float(image.healthcheck_options.get("timeout", "30s").removesuffix("s"))
    result = subprocess.run(image.healthcheck, env=env, capture_output=True, timeout=timeout + 5, check=False)
    return result.returncode


@pytest.fixture
def container(serving_env: ServingEnvironment, tmp_path: Path) -> Iterator[Container]:
    image = stage_config(DOCKERFILE)
    ready_file = tmp_path / "ready.json"
    # Loopback and ephemeral ports instead of 0.0.0.0:8000-8002, through the variables the image itself sets.
    listeners = {"MODELPORT_HOST": "127.0.0.1", "MODELPORT_HTTP_PORT": "0", "MODELPORT_GRPC_PORT": "0",
                 "MODELPORT_METRICS_PORT": "0"}  # fmt: skip
    missing = set(listeners) - set(image.env)
    assert not missing, f"the image does not set {sorted(missing)}: its listeners would not be configurable"
    overrides = {**listeners, "MODELPORT_MANAGEMENT_PORT": "0", "MODELPORT_READY_FILE": str(ready_file)}
    env = _container_env(image, serving_env.venv, overrides)
    command = _container_command(image, ROOT / "models")
    assert shutil.which(command[0], path=env["PATH"]) == str(serving_env.venv / "bin" / command[0]), (
        f"the image's entrypoint {command[0]} does not resolve to the installed wheel's script"
    )
    log = tmp_path / "container.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    running = Container(process=process, env=env, ports={}, log=log)
    started = time.monotonic()
    try:
        deadline = started + READY_TIMEOUT_S
        while not ready_file.exists():
            assert process.poll() is None, (
                f"exited with {process.returncode} before ready:\n{running.output()}"
            )
            assert time.monotonic() < deadline, f"not ready after {READY_TIMEOUT_S} s:\n{running.output()}"
            time.sleep(0.05)
        running.ports = json.loads(ready_file.read_text())
        running.ready_s = time.monotonic() - started
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _served_model(client: httpclient.InferenceServerClient) -> tuple[str, str, dict[str, Any]]:
    """A ready model of the default repository with numeric inputs: name, version and metadata."""
    index = client.get_model_repository_index()
    assert index, "the image's default repository (models/) serves no model"
    for entry in index:
        if entry.get("state") != "READY":
            continue
        metadata = client.get_model_metadata(entry["name"], entry.get("version", ""))
        if all(tensor["datatype"] != "BYTES" for tensor in metadata["inputs"]):
            return entry["name"], entry.get("version", ""), metadata
    raise AssertionError(f"no ready model with numeric inputs in models/: {index}")


def _inputs(metadata: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """Deterministic inputs: batch 2 for a leading dynamic dimension, 3 for other dynamic ones."""
    generator = np.random.default_rng(7)
    feeds = {}
    for tensor in metadata["inputs"]:
        shape = [(2 if index == 0 else 3) if dim < 0 else dim for index, dim in enumerate(tensor["shape"])]
        dtype = triton_to_np_dtype(tensor["datatype"])
        if np.issubdtype(dtype, np.floating):
            feeds[tensor["name"]] = generator.standard_normal(shape).astype(dtype)
        else:
            feeds[tensor["name"]] = generator.integers(0, 2, shape).astype(dtype)
    return feeds


def _triton_inputs(module: Any, metadata: dict[str, Any], feeds: dict[str, npt.NDArray[Any]]) -> list[Any]:
    inputs = []
    for tensor in metadata["inputs"]:
        item = module.InferInput(tensor["name"], list(feeds[tensor["name"]].shape), tensor["datatype"])
        item.set_data_from_numpy(feeds[tensor["name"]])
        inputs.append(item)
    return inputs


def test_the_images_command_serves_the_default_repository_and_stops_on_sigterm(
    container: Container, serving_env: ServingEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    image = stage_config(DOCKERFILE)
    for port in ("http_port", "grpc_port", "metrics_port"):
        assert container.ports.get(port), (
            f"the ready file names no {port} (listener not running): {container.ports}"
        )
    http_url = f"127.0.0.1:{container.ports['http_port']}"
    with httpx.Client(base_url=f"http://{http_url}", timeout=10) as rest:
        assert rest.get("/v2/health/live").status_code == 200
        assert rest.get("/v2/health/ready").status_code == 200
    # The image's HEALTHCHECK, with the port the server really bound.
    probe_env = {**container.env, "MODELPORT_HTTP_PORT": str(container.ports["http_port"])}
    assert _healthcheck(image, probe_env) == 0

    client = httpclient.InferenceServerClient(http_url)
    name, version, metadata = _served_model(client)
    feeds = _inputs(metadata)
    model_file = ROOT / "models" / name / (version or max(metadata["versions"], key=int)) / "model.onnx"
    reference = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in reference.get_outputs()], reference.run(None, feeds), strict=True))
    rest_result = client.infer(name, _triton_inputs(httpclient, metadata, feeds), model_version=version)
    grpc_client = grpcclient.InferenceServerClient(f"127.0.0.1:{container.ports['grpc_port']}")
    assert grpc_client.is_server_ready()
    grpc_result = grpc_client.infer(name, _triton_inputs(grpcclient, metadata, feeds), model_version=version)
    for output in metadata["outputs"]:
        for result in (rest_result, grpc_result):
            np.testing.assert_allclose(
                result.as_numpy(output["name"]), expected[output["name"]], rtol=1e-5, atol=1e-6
            )
    grpc_client.close()
    client.close()

    metrics = httpx.get(f"http://127.0.0.1:{container.ports['metrics_port']}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert f'model="{name}"' in metrics.text

    container.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    drain = float(container.env.get("MODELPORT_DRAIN_TIMEOUT", ServerSettings().drain_timeout))
    try:
        code = container.process.wait(timeout=drain + 30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {drain + 30:.0f} s after SIGTERM:\n{container.output()}")
    assert code == 0, f"exit code {code} after SIGTERM:\n{container.output()}"
    with capsys.disabled():
        stopped_s = time.monotonic() - signalled
        print(
            f"\n[container] {' '.join(image.command)}: ready in {container.ready_s:.1f} s, model {name} "
            f"answered over REST and gRPC, exit 0 {stopped_s:.1f} s after SIGTERM"
        )
    # Once it is gone the health check fails, as Docker needs it to.
    assert _healthcheck(image, probe_env) != 0
