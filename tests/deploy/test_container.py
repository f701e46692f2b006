"""The serving image's behaviour, without a Docker engine (none runs on the project's machines).

``image_build`` replays the Dockerfile's own build of the CPU image into a scratch folder standing for the
image's filesystem: the builder stage's COPYs and ``pip wheel``, the requirements script, the fresh venv at
``/opt/modelport``, the image's ``pip install`` lines and its framework guard (only the user creation is not
replayed: it changes the machine). Then the Dockerfile's own ENTRYPOINT + CMD run with its ENV against the
image's ``/models`` (the copy of ``models/``), all read from the Dockerfile so they cannot drift. Only what a
container cannot have here is changed, through the variables the image itself sets: the listeners move to
127.0.0.1 ephemeral ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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

from tests.deploy.image_build import ReplayedBuild, map_path, replay_build
from tests.deploy.image_config import ImageConfig, read_stages, stage_config
from tests.helpers.server_process import wait_ready

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
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
BUILD_TIMEOUT_S = 600
READY_TIMEOUT_S = 120

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]


@dataclass(frozen=True)
class ServingImage:
    """The replayed CPU image: its filesystem, environment, venv, and what its venv holds."""

    build: ReplayedBuild
    venv: Path
    distributions: dict[str, str]  # normalized name -> version
    size_bytes: int
    seconds: float

    @property
    def dist(self) -> Path:
        return self.build.root / "dist"


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _clean_env() -> dict[str, str]:
    """This machine's environment minus what would tie a process to the test's own virtual environment."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")
    }


def _base_python() -> Path:
    """What stands in for the base image's Python: the system's ``/usr/bin/python3`` where it exists with
    ``venv`` (Debian's, like the image's base, and reachable by every user as an image's is), else the
    interpreter running the tests (which may live under a root-only home)."""
    system = Path("/usr/bin/python3")
    if system.exists():
        probe = subprocess.run(
            [str(system), "-c", "import venv, ensurepip"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return system
    return Path(sys.executable)


def _world_reachable(path: Path) -> bool:
    """Every folder above the real file lets others through, and the file lets others execute it."""
    real = path.resolve()
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in [real, *real.parents])


def _readable_by_all(root: Path) -> None:
    """Image layers are readable by every user whatever the umask they were built under; so is this tree."""
    for folder, _, files in os.walk(root):
        Path(folder).chmod(Path(folder).stat().st_mode | 0o755)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.stat().st_mode & 0o100 else 0))


def _tree_size(path: Path) -> int:
    return sum(
        entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink()
    )


@pytest.fixture(scope="session")
def serving_image() -> Iterator[ServingImage]:
    """Replay the Dockerfile's build of the CPU image; once per test session.

    The image filesystem lives outside pytest's private (0700) temp folder, world-readable like an image's,
    so that the server can run as the image's unprivileged user.
    """
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="modelport-image-"))
    root.chmod(0o755)
    try:
        yield _replay(root, started)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _replay(root: Path, started: float) -> ServingImage:
    build = replay_build(
        DOCKERFILE,
        context=ROOT,
        root=root,
        python=_base_python(),
        host_env=_clean_env(),
        timeout=BUILD_TIMEOUT_S,
    )
    _readable_by_all(root)
    image = stage_config(DOCKERFILE)
    venv_bin = Path(map_path(image.env["PATH"].split(":")[0], root))
    assert venv_bin.name == "bin" and (venv_bin.parent / "pyvenv.cfg").is_file(), (
        f"the image's PATH should start with its virtual environment's bin folder: {image.env['PATH']}"
    )
    listing = subprocess.run(
        [
            str(venv_bin / "python"),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=build.env,
    )
    return ServingImage(
        build=build,
        venv=venv_bin.parent,
        distributions={_normalized(name): version for name, version in json.loads(listing.stdout).items()},
        size_bytes=_tree_size(venv_bin.parent),
        seconds=time.monotonic() - started,
    )


def _onnxruntime_gpu_spec() -> str:
    """The default of the ``ONNXRUNTIME_GPU`` build argument (the GPU wheel the CUDA variant installs)."""
    for stage in read_stages(DOCKERFILE):
        for instruction, value in stage.instructions:
            if instruction == "ARG" and value.startswith("ONNXRUNTIME_GPU="):
                return value.split("=", 1)[1]
    raise AssertionError("the Dockerfile declares no ARG ONNXRUNTIME_GPU")


def _requirements(path: Path) -> dict[str, str]:
    """normalized name -> the requirement line."""
    found = {}
    for line in path.read_text().splitlines():
        name = line.split(";")[0]
        for separator in "[<>=!~ ":
            name = name.split(separator)[0]
        found[_normalized(name)] = line
    return found


# --- the build -------------------------------------------------------------------------------------------


def test_the_build_replays_everything_but_the_user_creation(serving_image: ServingImage) -> None:
    """A RUN that is not replayed here is not tested here: only the system account may be left out."""
    for stage, command in serving_image.build.skipped:
        assert {"groupadd", "useradd"} & set(command.split()), f"stage {stage}: RUN {command} is not replayed"
    replayed = " ".join(command for _, command in serving_image.build.replayed)
    assert "pip wheel" in replayed
    assert "pip install" in replayed


def test_the_serving_environment_holds_no_framework(
    serving_image: ServingImage, capsys: pytest.CaptureFixture[str]
) -> None:
    size_mb = serving_image.size_bytes / 2**20
    (wheel,) = serving_image.dist.glob("modelport-*.whl")
    with capsys.disabled():
        print(
            f"\n[container] serving venv: {size_mb:.0f} MiB, "
            f"{len(serving_image.distributions)} distributions, "
            f"built by the Dockerfile's steps in {serving_image.seconds:.1f} s; {wheel.name} "
            f"({wheel.stat().st_size / 1024:.0f} KiB)"
        )
    got_in = FRAMEWORKS & set(serving_image.distributions)
    assert not got_in, f"the serving environment contains {sorted(got_in)}"
    assert "onnxruntime" in serving_image.distributions
    assert "onnxruntime-gpu" not in serving_image.distributions, "onnxruntime and onnxruntime-gpu together"
    assert serving_image.size_bytes < MAX_ENVIRONMENT_BYTES, f"serving environment grew to {size_mb:.0f} MiB"


def test_the_cuda_variant_swaps_onnxruntime_for_onnxruntime_gpu(serving_image: ServingImage) -> None:
    cpu = _requirements(serving_image.dist / "requirements-cpu.txt")
    cuda = _requirements(serving_image.dist / "requirements-cuda.txt")
    assert "onnxruntime" in cpu
    assert "onnxruntime-gpu" not in cpu
    assert cuda.pop("onnxruntime-gpu") == _onnxruntime_gpu_spec()
    assert "onnxruntime" not in cuda
    del cpu["onnxruntime"]
    assert cuda == cpu, "the variants differ in more than onnxruntime"
    assert not FRAMEWORKS & set(cpu)


def test_the_framework_guard_of_the_image_fails_where_a_framework_is_installed() -> None:
    """The build's last check exits non-zero in an environment with torch/TensorFlow (the test's own)."""
    guard = next(
        command.split("&&")[-1].strip()
        for stage in read_stages(DOCKERFILE)
        for command in stage.runs
        if "find_spec" in command
    )
    env = {**_clean_env(), "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        ["/bin/sh", "-c", guard], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "torch" in result.stderr


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


def _image_user(image: ImageConfig, venv: Path) -> dict[str, Any]:
    """``subprocess`` arguments that run as the image's USER where this test can switch to it (it runs as
    root, and the venv's interpreter is reachable by others); otherwise the test's own user."""
    if os.geteuid() != 0 or not _world_reachable(venv / "bin" / "python"):
        return {}
    assert image.user is not None, "the image sets no USER"
    uid, _, gid = image.user.partition(":")
    return {"user": int(uid), "group": int(gid or uid), "extra_groups": []}


def _healthcheck(image: ImageConfig, env: dict[str, str], venv: Path) -> int:
    """Run the image's HEALTHCHECK command as its user; its exit code (Docker: 0 healthy, 1 unhealthy)."""
    timeout = float(image.healthcheck_options.get("timeout", "30s").removesuffix("s"))
    result = subprocess.run(
        image.healthcheck,
        env=env,
        capture_output=True,
        timeout=timeout + 5,
        check=False,
        **_image_user(image, venv),
    )
    return result.returncode


@pytest.fixture
def container(serving_image: ServingImage, tmp_path: Path) -> Iterator[Container]:
    """The image's ENTRYPOINT + CMD with its environment, the image's paths mapped into its filesystem."""
    with _run_image(serving_image, tmp_path / "container.log") as running:
        yield running


@contextlib.contextmanager
def _run_image(
    serving_image: ServingImage, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Container]:
    """Run the image's command as :func:`container` does, with ``extra_env`` as ``docker run -e`` would add
    (the user's variables beat the image's ENV); killed on exit."""
    image = stage_config(DOCKERFILE)
    # Writable by the image's user, as a mounted volume or /tmp would be.
    exchange = Path(tempfile.mkdtemp(prefix="modelport-ready-"))
    exchange.chmod(0o777)
    ready_file = exchange / "ready.json"
    # Loopback and ephemeral ports instead of 0.0.0.0:8000-8002, through the variables the image itself sets.
    listeners = {
        "MODELPORT_HOST": "127.0.0.1",
        "MODELPORT_HTTP_PORT": "0",
        "MODELPORT_GRPC_PORT": "0",
        "MODELPORT_METRICS_PORT": "0",
    }
    missing = set(listeners) - set(image.env)
    assert not missing, f"the image does not set {sorted(missing)}: its listeners would not be configurable"
    env = {
        **serving_image.build.env,
        **listeners,
        "MODELPORT_MANAGEMENT_PORT": "0",
        "MODELPORT_READY_FILE": str(ready_file),
        "HOME": "/nonexistent",  # the image user's home: it does not exist there either
        **(extra_env or {}),
    }
    command = [map_path(argument, serving_image.build.root) for argument in image.command]
    assert shutil.which(command[0], path=env["PATH"]) == str(serving_image.venv / "bin" / command[0]), (
        f"the image's entrypoint {command[0]} does not resolve to the installed wheel's script"
    )
    with log.open("wb") as sink:
        # As the image's non-root user, in its working directory (/, not writable), like the container.
        process = subprocess.Popen(
            command,
            env=env,
            cwd=serving_image.build.root / image.workdir.lstrip("/"),
            stdout=sink,
            stderr=subprocess.STDOUT,
            **_image_user(image, serving_image.venv),
        )
    running = Container(process=process, env=env, ports={}, log=log)
    started = time.monotonic()
    try:
        running.ports = wait_ready(process, ready_file, log, READY_TIMEOUT_S)
        running.ready_s = time.monotonic() - started
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        shutil.rmtree(exchange, ignore_errors=True)


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
    container: Container, serving_image: ServingImage, capsys: pytest.CaptureFixture[str]
) -> None:
    image = stage_config(DOCKERFILE)
    for port in ("http_port", "grpc_port", "metrics_port"):
        assert container.ports.get(port), (
            f"the ready file names no {port} (listener not running): {container.ports}"
        )
    uid = Path(f"/proc/{container.process.pid}").stat().st_uid
    expected_uid = _image_user(image, serving_image.venv).get("user", os.geteuid())
    assert uid == expected_uid, f"the server runs as uid {uid}, not the image's user {expected_uid}"
    http_url = f"127.0.0.1:{container.ports['http_port']}"
    with httpx.Client(base_url=f"http://{http_url}", timeout=10) as rest:
        assert rest.get("/v2/health/live").status_code == 200
        assert rest.get("/v2/health/ready").status_code == 200
    # The image's HEALTHCHECK, with the port the server really bound.
    probe_env = {**container.env, "MODELPORT_HTTP_PORT": str(container.ports["http_port"])}
    assert _healthcheck(image, probe_env, serving_image.venv) == 0

    client = httpclient.InferenceServerClient(http_url)
    name, version, metadata = _served_model(client)
    feeds = _inputs(metadata)
    model_file = (
        serving_image.build.root
        / "models"
        / name
        / (version or max(metadata["versions"], key=int))
        / "model.onnx"
    )
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
            f"\n[container] {' '.join(image.command)} as uid {uid}: ready in {container.ready_s:.1f} s, "
            f"model {name} answered over REST and gRPC, exit 0 {stopped_s:.1f} s after SIGTERM"
        )
    # Once it is gone the health check fails, as Docker needs it to.
    assert _healthcheck(image, probe_env, serving_image.venv) != 0


def test_the_repository_variable_picks_what_the_image_serves(
    serving_image: ServingImage, tmp_path: Path
) -> None:
    """``docker run -e MODELPORT_REPOSITORY=...``: the image passes no option that would beat it."""
    # World-readable, like a mounted volume the image's user reads.
    repository = Path(tempfile.mkdtemp(prefix="modelport-repository-"))
    try:
        shutil.copytree(ROOT / "models" / "mlp", repository / "mlp")
        _readable_by_all(repository)
        with _run_image(
            serving_image, tmp_path / "container.log", {"MODELPORT_REPOSITORY": str(repository)}
        ) as running:
            client = httpclient.InferenceServerClient(f"127.0.0.1:{running.ports['http_port']}")
            try:
                served = {entry["name"] for entry in client.get_model_repository_index()}
            finally:
                client.close()
    finally:
        shutil.rmtree(repository, ignore_errors=True)
    assert served == {"mlp"}, f"MODELPORT_REPOSITORY={repository} served {served}"


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("convert", "modelport[torch]"),
        ("quantize", "modelport[convert]"),
        ("export-mobile", "modelport[convert]"),
        ("convert-repository", "modelport[tensorflow]"),
    ],
)
def test_converter_commands_answer_help_and_name_their_extra_in_the_serving_image(
    serving_image: ServingImage, command: str, extra: str
) -> None:
    """The image is the serving-only environment: none of the converters' packages are installed."""
    script = str(serving_image.venv / "bin" / "modelport")
    env = serving_image.build.env
    shown = subprocess.run(
        [script, command, "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert extra in " ".join(shown.stdout.split()), shown.stdout
    refused = subprocess.run(
        [script, command, "model.onnx"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and extra in refused.stderr, refused.stderr
