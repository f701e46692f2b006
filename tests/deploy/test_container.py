"""The serving image, built and run by a real container engine (podman with runc; see ``container_engine``).

The image is built once per session from the Dockerfile (``conftest.serving_image``), as ``make image`` builds
it. Each test starts its own container with the ports 8000-8002 published on 127.0.0.1 ephemeral ports and
talks to it with the real clients; containers are removed whatever the outcome.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml
from modelport.server.settings import ServerSettings
from tritonclient.utils import triton_to_np_dtype

from tests.deploy.conftest import BuiltImage
from tests.deploy.container_engine import Container, ca_bundle
from tests.docs.markdown_blocks import code_blocks
from tests.helpers.onnx_models import (
    slow_infer,
    slow_iterations,
    slow_model,
    write_config,
    write_corrupt_model,
    write_model,
)

ROOT = Path(__file__).resolve().parents[2]
# Distributions a serving image must never contain (the frameworks and what only converting needs).
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
# The Debian base is ~225 MB and the serving environment ~250 MB; a framework alone would add 0.75-1.3 GB.
MAX_IMAGE_BYTES = 700 * 2**20
READY = "modelport ready in"
READ_ONLY = ("--read-only", "--tmpfs", "/tmp")
IMAGE_UID = 10001
DOCUMENTED = ("README.md", "docs/deployment.md")
DOCUMENTED_IMAGE = "modelport:0.1.0"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@contextlib.contextmanager
def _repository() -> Iterator[Path]:
    """A model repository folder the image's user can read once mounted (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="modelport-repository-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _readable_by_all(root: Path) -> None:
    for folder, _, files in os.walk(root):
        Path(folder).chmod(0o755)
        for name in files:
            (Path(folder) / name).chmod(0o644)


@contextlib.contextmanager
def _serving(image: BuiltImage, *options: str, args: tuple[str, ...] = ()) -> Iterator[Container]:
    """A container of the image, once it has logged that it is ready."""
    with image.engine.container(image.tag, *options, args=args) as container:
        container.wait_for_log(READY, timeout=90)
        yield container


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


# --- the build -------------------------------------------------------------------------------------------


def test_the_image_holds_the_serving_environment_and_no_framework(
    serving_image: BuiltImage, capsys: pytest.CaptureFixture[str]
) -> None:
    podman = serving_image.engine
    distributions = {
        _normalized(name): version for name, version in podman.distributions(serving_image.tag).items()
    }
    size = podman.size_bytes(serving_image.tag)
    with capsys.disabled():
        print(
            f"\n[container] {serving_image.tag}: {size / 2**20:.0f} MiB, {len(distributions)} distributions, "
            f"built by podman in {serving_image.seconds:.0f} s"
        )
    got_in = FRAMEWORKS & set(distributions)
    assert not got_in, f"the serving image contains {sorted(got_in)}"
    # The folders too: a package copied in without its metadata is no distribution but still importable.
    listed = podman.site_packages(serving_image.tag)
    assert "onnxruntime" in listed
    assert not {"torch", "tensorflow", "keras", "tf2onnx"} & set(listed), listed
    assert "modelport" in distributions
    assert "onnxruntime" in distributions
    assert "onnxruntime-gpu" not in distributions, "onnxruntime and onnxruntime-gpu together"
    # --trace-endpoint works in the image: the OpenTelemetry SDK and its OTLP/HTTP exporter are serving
    # dependencies (imported only when an endpoint is set).
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"} <= set(distributions)
    assert size < MAX_IMAGE_BYTES, f"the image grew to {size / 2**20:.0f} MiB"


def test_the_image_keeps_no_trace_of_the_build_secret(serving_image: BuiltImage) -> None:
    """The CA bundle came in as a secret for the pip steps only: no file, variable or pip setting names it."""
    podman = serving_image.engine
    config = podman.inspect(serving_image.tag)
    env = config["Env"]
    assert isinstance(env, list)
    assert not [item for item in env if item.split("=")[0] in ("PIP_CERT", "SSL_CERT_FILE")], env
    listing = podman.run_image(serving_image.tag, "-A", "/run/secrets", entrypoint="ls", check=False)
    assert "pip-ca" not in listing.stdout
    pip_config = podman.run_image(serving_image.tag, "-m", "pip", "config", "list", entrypoint="python")
    assert "cert" not in pip_config.stdout, pip_config.stdout
    bundle = ca_bundle()
    if bundle is not None:
        history = podman.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", serving_image.tag).stdout
        assert str(bundle) not in history, history


# --- the run --------------------------------------------------------------------------------------------


def test_the_container_serves_as_its_user_from_a_read_only_repository_and_root(
    serving_image: BuiltImage, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    mount = ("-v", f"{ROOT / 'models'}:/models:ro")
    with _serving(serving_image, *READ_ONLY, *mount) as container:
        ready_s = time.monotonic() - started
        status = container.exec("cat", "/proc/1/status").stdout
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert set(uids) == {str(IMAGE_UID)}, f"PID 1 runs as {uids}, not the image's user {IMAGE_UID}"
        assert container.exec("touch", "/models/written").returncode != 0, "the repository mount is writable"
        assert container.exec("touch", "/opt/written").returncode != 0, "the root filesystem is writable"
        assert container.healthcheck() == 0, container.logs()

        http_url, grpc_url = container.address(8000), container.address(8001)
        client = httpclient.InferenceServerClient(http_url)
        grpc_client = grpcclient.InferenceServerClient(grpc_url)
        try:
            name, version, metadata = _served_model(client)
            feeds = _inputs(metadata)
            model_file = (
                ROOT / "models" / name / (version or max(metadata["versions"], key=int)) / "model.onnx"
            )
            reference = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
            names = [output.name for output in reference.get_outputs()]
            expected = dict(zip(names, reference.run(None, feeds), strict=True))
            rest = client.infer(name, _triton_inputs(httpclient, metadata, feeds), model_version=version)
            assert grpc_client.is_server_ready()
            grpc = grpc_client.infer(name, _triton_inputs(grpcclient, metadata, feeds), model_version=version)
        finally:
            grpc_client.close()
            client.close()
        for output in metadata["outputs"]:
            for result in (rest, grpc):
                np.testing.assert_allclose(
                    result.as_numpy(output["name"]), expected[output["name"]], rtol=1e-5, atol=1e-6
                )
        metrics = httpx.get(f"http://{container.address(8002)}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert f'model="{name}"' in metrics.text
    with capsys.disabled():
        print(f"\n[container] read-only root and repository, uid {IMAGE_UID}: ready in {ready_s:.1f} s")


def test_podman_stop_drains_the_request_in_flight_and_exits_0(
    serving_image: BuiltImage, capsys: pytest.CaptureFixture[str]
) -> None:
    drain = ServerSettings().drain_timeout
    with _repository() as repository:
        write_model(repository, "slow", slow_model())
        _readable_by_all(repository)
        with _serving(serving_image, *READ_ONLY, "-v", f"{repository}:/models:ro") as container:
            url = container.address(8000)

            iterations = slow_iterations(lambda n: slow_infer(url, n), 2.0)
            outcome: dict[str, Any] = {}

            def in_flight() -> None:
                try:
                    outcome["result"] = slow_infer(url, iterations)
                except Exception as error:
                    outcome["error"] = error

            thread = threading.Thread(target=in_flight, daemon=True)
            thread.start()
            time.sleep(0.5)  # the request is running in the model now
            signalled = time.monotonic()
            code = container.stop(timeout=drain + 15)
            stopped_s = time.monotonic() - signalled
            thread.join(30)
            logs = container.logs()
    assert "error" not in outcome, f"{outcome.get('error')}\n{logs}"
    assert outcome["result"].shape == (128, 128)
    assert code == 0, f"exit code {code} after podman stop:\n{logs}"
    assert stopped_s < drain, f"stopped {stopped_s:.1f} s after SIGTERM, beyond the {drain} s drain timeout"
    assert "shutting down" in logs
    with capsys.disabled():
        print(f"\n[container] podman stop: request in flight answered, exit 0 after {stopped_s:.1f} s")


def test_a_repository_with_a_bad_model_still_starts_and_reports_it(serving_image: BuiltImage) -> None:
    """Also ``-e MODELPORT_REPOSITORY``: the image passes no option that would beat the variable."""
    with _repository() as repository:
        shutil.copytree(ROOT / "models" / "mlp", repository / "mlp")
        write_corrupt_model(repository, "broken")
        _readable_by_all(repository)
        options = ("-v", f"{repository}:/srv/models:ro", "-e", "MODELPORT_REPOSITORY=/srv/models")
        with _serving(serving_image, *READ_ONLY, *options) as container:
            assert container.healthcheck() == 0, container.logs()
            client = httpclient.InferenceServerClient(container.address(8000))
            try:
                index = {entry["name"]: entry for entry in client.get_model_repository_index()}
            finally:
                client.close()
            logs = container.logs()
    assert set(index) == {"mlp", "broken"}, index
    assert index["mlp"]["state"] == "READY"
    assert index["broken"]["state"] == "UNAVAILABLE"
    assert "model.onnx" in index["broken"]["reason"], index["broken"]
    assert "model broken version 1 failed to load" in logs, logs


def test_a_cpu_limit_sets_the_usable_cpus_and_the_thread_budget(serving_image: BuiltImage) -> None:
    """``--cpus 1`` (a cgroup CPU quota): the start-up line says 1 CPU, and the budgets the server computes
    in that cgroup follow it, where the affinity mask alone would give every core of the host."""
    with _serving(serving_image, *READ_ONLY, "--cpus", "1") as container:
        logs = container.logs()
        budget = container.exec(
            "python",
            "-c",
            "import os; from modelport.server.workers.pool_settings import thread_budget; "
            "print(len(os.sched_getaffinity(0)), thread_budget(0, 1))",
        )
    line = next((line for line in logs.splitlines() if "resources:" in line), "")
    assert "resources: 1 usable CPUs" in line and "CPU quota 1.00" in line, logs
    affinity, threads = budget.stdout.split()
    assert int(threads) == 1, f"{threads} intra-op threads for one worker under a 1-CPU quota"
    assert f"({affinity} in the affinity mask" in line


def test_the_cuda_provider_requested_in_the_cpu_image_falls_back_to_cpu_with_one_log_line(
    serving_image: BuiltImage,
) -> None:
    with _repository() as repository:
        shutil.copytree(ROOT / "models" / "mlp", repository / "mlp")
        asked = {
            **yaml.safe_load((repository / "mlp" / "config.yaml").read_text()),
            "execution_providers": ["cuda", "cpu"],
        }
        write_config(repository, "mlp", asked)
        _readable_by_all(repository)
        with _serving(serving_image, *READ_ONLY, "-v", f"{repository}:/models:ro") as container:
            config = httpx.get(f"http://{container.address(8000)}/v2/models/mlp/config", timeout=10).json()
            logs = container.logs()
    fallbacks = [line for line in logs.splitlines() if "not available in this onnxruntime build" in line]
    assert len(fallbacks) == 1, logs
    assert "model mlp: execution provider(s) cuda not available" in fallbacks[0]
    assert fallbacks[0].rstrip().endswith("using cpu")
    assert config["parameters"]["execution_provider"]["string_value"] == "cpu"


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("convert", "modelport[torch]"),
        ("quantize", "modelport[convert]"),
        ("export-mobile", "modelport[convert]"),
        ("bench", "modelport[bench]"),
        ("convert-repository", "modelport[tensorflow]"),
    ],
)
def test_converter_commands_answer_help_and_name_their_extra_in_the_serving_image(
    serving_image: BuiltImage, command: str, extra: str
) -> None:
    """The image is the serving-only environment: none of the converters' packages are installed."""
    podman = serving_image.engine
    shown = podman.run_image(serving_image.tag, command, "--help", entrypoint="modelport", check=False)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert extra in " ".join(shown.stdout.split()), shown.stdout
    refused = podman.run_image(serving_image.tag, command, "model.onnx", entrypoint="modelport", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and extra in refused.stderr, refused.stderr


# --- the documented commands --------------------------------------------------------------------------------


def _documented_runs() -> list[tuple[str, list[str]]]:
    """The CPU image's ``docker run`` / ``podman run`` lines of the README and docs/deployment.md: (where,
    their words)."""
    runs = []
    for block in (block for page in DOCUMENTED for block in code_blocks(ROOT / page, page)):
        for number, line in enumerate(block.code.replace("\\\n", " ").splitlines()):
            if not line.startswith(("docker run ", "podman run ")):
                continue
            words = shlex.split(line, comments=True)
            if DOCUMENTED_IMAGE in words:
                runs.append((f"{block.where}+{number}", words[2:]))
    return runs


@pytest.mark.parametrize(
    "words", [words for _, words in _documented_runs()], ids=[w for w, _ in _documented_runs()]
)
def test_a_documented_run_command_starts_a_ready_healthy_server(
    serving_image: BuiltImage, words: list[str]
) -> None:
    """Run as documented; only what cannot be the same here changes: the host ports (ephemeral, on
    loopback), the name and ``-d``/``--rm`` (the test owns the container), ``$PWD`` (the checkout) and the
    image (this session's build)."""
    at = words.index(DOCUMENTED_IMAGE)
    options, args = words[:at], words[at + 1 :]
    kept: list[str] = []
    skip_value = False
    for word in options:
        if skip_value:
            skip_value = False
        elif word in ("-p", "--publish", "--name"):
            skip_value = True
        elif word not in ("-d", "--detach", "--rm"):
            kept.append(word.replace("$PWD", str(ROOT)))
    with _serving(serving_image, *kept, args=tuple(args)) as container:
        assert container.healthcheck() == 0, container.logs()
        ready = httpx.get(f"http://{container.address(8000)}/v2/health/ready", timeout=10)
        assert ready.status_code == 200
