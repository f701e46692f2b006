"""The known model-server vulnerabilities of SECURITY.md, each tried against modelport the way it was
exploited elsewhere; modelport must refuse cleanly and keep serving.

- Triton CVE-2025-23319/23320/23334 (shared-memory chain): the server's own regions cannot be registered.
- Triton CVE-2025-23310/23311 (chunked transfer encoding overflow): megabytes of tiny chunks.
- TensorFlow Serving CVE-2025-0649 (nested JSON recursion): 100,000 nested ``[``.
- TorchServe ShellTorch, CVE-2023-43654 (model download from any URL through an exposed management API)
  and CVE-2022-1471 (unsafe YAML): URLs are not downloaded, the management API needs a token off loopback,
  and config.yaml is read with a safe loader.
- ONNX external data escaping the model folder (CVE-2022-25882, CVE-2024-27318, CVE-2026-27489): a model in
  the repository whose weights point at ``../../etc/passwd`` or an absolute path does not load (uploads
  and links are in ``test_traversal.py``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.onnx_models import identity_model, write_config, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.reliability.test_traversal import external_data_model

_PWNED = "modelport-yaml-pwned"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cve-repo")
    write_model(root, "identity", identity_model("FP32", (-1, 4)), config={"max_batch_size": 8})
    for name, location in (("escape", "../../etc/passwd"), ("absolute", "/etc/passwd")):
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.onnx").write_bytes(external_data_model(location))
    write_model(root, "yaml", identity_model("FP32", (-1, 4)))
    marker = root.parent / _PWNED
    write_config(root, "yaml", f'max_batch_size: !!python/object/apply:os.system ["touch {marker}"]\n')
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with start_server(repository) as handle:
        yield handle


def _assert_serving(server: ServerProcess) -> None:
    assert server.process.poll() is None, "the server died"
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    response = httpx.post(f"http://{server.http_url}/v2/models/identity/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    assert httpx.get(f"http://{server.http_url}/v2/health/ready", timeout=10).status_code == 200


def test_triton_shared_memory_chain_cannot_reach_the_servers_memory(server: ServerProcess) -> None:
    """CVE-2025-23319/23320/23334: a region name leaked in an error, Triton's internal region registered
    through the shared-memory API, then read and written. modelport's own regions are anonymous (memfd, no
    key to name them); a key is one name in /dev/shm, never a path; keys in the server's own namespace are
    refused; and an unknown region used in an inference is refused, naming no internal region."""
    base = f"http://{server.http_url}/v2/systemsharedmemory"
    for key in (
        "triton_python_backend_shm_region_1",  # no such object here
        "/modelport-tensors",  # the name of the workers' memfds
        "/dev/shm/../proc/self/mem",
        "/proc/self/fd/3",
    ):
        response = httpx.post(f"{base}/region/r/register", json={"key": key, "byte_size": 4096}, timeout=10)
        assert response.status_code == 400, (key, response.text)
        assert "region 'r'" in response.json()["error"]
    assert httpx.get(f"{base}/status", timeout=10).json() == []
    shared = {"shared_memory_region": "r", "shared_memory_byte_size": 16}
    infer = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "parameters": shared}]}
    output = {"name": "OUTPUT0", "parameters": shared}
    data = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    for body in (infer, {**data, "outputs": [output]}):
        response = httpx.post(f"http://{server.http_url}/v2/models/identity/infer", json=body, timeout=10)
        assert response.status_code == 400, response.text
        assert "unable to find system shared memory region 'r'" in response.json()["error"]
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
        request = pb.SystemSharedMemoryRegisterRequest(name="r", key="/modelport-tensors", byte_size=64)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SystemSharedMemoryRegister(request, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as caught:
            stub.CudaSharedMemoryRegister(pb.CudaSharedMemoryRegisterRequest(name="r"), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
        message = pb.ModelInferRequest(model_name="identity")
        tensor = message.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
        tensor.parameters["shared_memory_region"].string_param = "r"
        tensor.parameters["shared_memory_byte_size"].int64_param = 16
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(message, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "unable to find system shared memory region 'r'" in str(caught.value.details())
    _assert_serving(server)


def test_triton_chunked_encoding_overflow_megabytes_of_tiny_chunks(server: ServerProcess) -> None:
    """CVE-2025-23310/23311: each HTTP chunk cost Triton stack; ~3 MB of 6-byte chunks overflowed it."""
    host, port = server.http_url.split(":")
    chunks = b"1\r\n \r\n" * 500_000  # 3 MB of one-byte chunks, under the default 64 MiB body limit
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        answer = sock.recv(64)
    assert answer.startswith(b"HTTP/1.1 200 "), answer  # 500,000 spaces are an empty body: the index
    _assert_serving(server)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"inputs":' + b"[" * 100_000,
        b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],"data":' + b"[" * 100_000,
        b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],"data":'
        + b"[" * 1000
        + b"1"
        + b"]" * 1000
        + b"}]}",
    ],
    ids=["bare", "inputs", "data-unclosed", "data-1000-deep"],
)
def test_tf_serving_nested_json_answers_400_quickly(server: ServerProcess, body: bytes) -> None:
    """CVE-2025-0649: TF Serving recursed once per nesting level of a JSON tensor and crashed."""
    started = time.monotonic()
    response = httpx.post(f"http://{server.http_url}/v2/models/identity/infer", content=body, timeout=30)
    assert response.status_code == 400, response.text
    assert time.monotonic() - started < 2.0
    _assert_serving(server)


def test_shelltorch_models_are_never_downloaded_from_a_url(server: ServerProcess) -> None:
    """CVE-2023-43654: TorchServe's management API fetched a model from any URL (SSRF, then code)."""
    base = f"http://{server.management_url}"
    for url in ("http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "../identity"):
        response = httpx.post(f"{base}/models", params={"url": url}, timeout=10)
        assert response.status_code == 400, response.text
        assert "no URLs" in response.text


def test_shelltorch_management_api_off_loopback_needs_a_token(repository: Path, tmp_path: Path) -> None:
    """ShellTorch's first step was a management API bound to every address without authentication."""
    command = [sys.executable, "-m", "modelport.server", "--repository", str(repository)]
    command += ["--management-host", "0.0.0.0", "--http-port", "0", "--grpc-port", "0"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode != 0
    assert "needs a management_token" in finished.stderr + finished.stdout


def test_shelltorch_yaml_config_runs_no_code(server: ServerProcess, repository: Path) -> None:
    """CVE-2022-1471 (SnakeYAML): TorchServe's YAML loader built arbitrary objects. config.yaml is read
    with a safe loader: the tag is refused as the model's own error, nothing runs."""
    rows = {r["name"]: r for r in httpx.post(f"http://{server.http_url}/v2/repository/index").json()}
    assert rows["yaml"]["state"] == "UNAVAILABLE"
    assert "config.yaml" in rows["yaml"]["reason"]
    assert not (repository.parent / _PWNED).exists()


def test_onnx_external_data_outside_the_model_folder_does_not_load(server: ServerProcess) -> None:
    """CVE-2022-25882 and its successors: ONNX external data at ``../../etc/passwd`` or ``/etc/passwd``."""
    rows = {r["name"]: r for r in httpx.post(f"http://{server.http_url}/v2/repository/index").json()}
    for name in ("escape", "absolute"):
        assert rows[name]["state"] == "UNAVAILABLE", rows[name]
        assert "external data" in rows[name]["reason"].lower(), rows[name]["reason"]
        assert "root:" not in rows[name]["reason"]
    _assert_serving(server)
