"""Poison requests cost one request, not the model: through the real server and real clients.

The crash is real: ``crash_op.c`` (compiled here with gcc) is a custom ONNX Runtime operator that aborts
the process running ONNX Runtime when an input element is 666, registered through config.yaml's
``session.custom_op_libraries``. A batch holding such a request kills its worker, is retried once, kills
the next, and is then run request by request: the culprit gets a 400 / INVALID_ARGUMENT naming the crash,
the other requests of its batch get their outputs, and the version stays available however often the
poison is sent (more often than the crash limit).

Also here: ``"outputs": []`` (the request that took a model down in three tries) answers every output.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import add_sub_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

POISON = 666.0
CRASH_OP_SOURCE = Path(__file__).with_name("crash_op.c")
CULPRIT = "the model's worker crashed on this request"


def crash_model() -> onnx.ModelProto:
    """Y = CrashOnPoison(X), X of shape [batch, 4]: Y = X unless an element is 666 (the process aborts)."""
    node = helper.make_node("CrashOnPoison", ["X"], ["Y"], domain="modelport.test")
    graph = helper.make_graph(
        [node],
        "crash_on_poison",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("modelport.test", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9)


def compile_crash_op(target: Path) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc is not None, "a C compiler is needed to build the crashing operator (apt-get install gcc)"
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(target), str(CRASH_OP_SOURCE)], check=True)
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("poison-repo")
    write_model(
        root,
        "crashy",
        crash_model(),
        config={
            "max_batch_size": 8,
            # A long delay so that requests sent together share one batch (a full batch of 8 goes at once).
            "dynamic_batching": {"max_queue_delay_us": 300_000},
            "workers": {"min": 1, "max": 1, "threads": 1},
            "session": {"custom_op_libraries": ["libcrash_op.so"]},
        },
    )
    compile_crash_op(root / "crashy" / "libcrash_op.so")
    write_model(root, "addsub", add_sub_model(), config={"max_batch_size": 8})
    with start_server(root, "--allow-custom-ops", "--instance-kind", "process") as handle:
        yield handle


def test_a_custom_op_library_is_refused_unless_the_server_allows_it(tmp_path: Path) -> None:
    """Without --allow-custom-ops no native library of a model folder is ever loaded: that model is
    UNAVAILABLE with a reason naming the key and the flag, and the others serve."""
    write_model(
        tmp_path, "crashy", crash_model(), config={"session": {"custom_op_libraries": ["libcrash_op.so"]}}
    )
    compile_crash_op(tmp_path / "crashy" / "libcrash_op.so")
    write_model(tmp_path, "addsub", add_sub_model(), config={"max_batch_size": 8})
    with start_server(tmp_path, "--instance-kind", "process") as handle:
        client = httpx.Client(base_url=f"http://{handle.http_url}", timeout=30)
        with client:
            index = {entry["name"]: entry for entry in client.post("/v2/repository/index").json()}
        assert index["crashy"]["state"] == "UNAVAILABLE"
        assert "session.custom_op_libraries" in index["crashy"]["reason"]
        assert "--allow-custom-ops" in index["crashy"]["reason"]
        assert index["addsub"]["state"] == "READY"


def rows(value: float, count: int = 1) -> np.ndarray[Any, Any]:
    return np.full((count, 4), value, np.float32)


def worker_pids(server: ServerProcess, model: str) -> list[int]:
    entry = httpx.get(f"http://{server.management_url}/models/{model}", timeout=10).json()[0]
    return [w["pid"] for w in entry.get("workers", [])]


def assert_serving(server: ServerProcess, model: str) -> None:
    """Ready on both protocols and in the repository index, and answering."""
    rest = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        assert rest.is_model_ready(model)
        assert grpc.is_model_ready(model)
        index = {(r["name"], r.get("state")) for r in rest.get_model_repository_index()}
        assert (model, "READY") in index
        tensor = httpclient.InferInput("X", [2, 4], "FP32")
        tensor.set_data_from_numpy(rows(1.5, 2))
        np.testing.assert_array_equal(rest.infer(model, [tensor]).as_numpy("Y"), rows(1.5, 2))
    finally:
        rest.close()
        grpc.close()


def test_an_empty_outputs_list_answers_every_output_and_crashes_nothing(server: ServerProcess) -> None:
    """As Triton: a request naming no output gets all of them (it used to crash the worker, and three such
    requests made the version unavailable)."""
    before = worker_pids(server, "addsub")
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = np.ones((1, 16), np.float32)
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": a.ravel().tolist()},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "FP32", "data": b.ravel().tolist()},
        ],
        "outputs": [],
    }
    for _ in range(5):  # more than the crash limit's worth
        response = httpx.post(f"http://{server.http_url}/v2/models/addsub/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
        assert outputs == {"OUTPUT0": (a + b).ravel().tolist(), "OUTPUT1": (a - b).ravel().tolist()}
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        inputs = [
            grpcclient.InferInput("INPUT0", [1, 16], "FP32"),
            grpcclient.InferInput("INPUT1", [1, 16], "FP32"),
        ]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
        result = grpc.infer("addsub", inputs, outputs=[])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    finally:
        grpc.close()
    assert worker_pids(server, "addsub") == before  # no worker died


def test_the_poison_request_of_a_batch_fails_alone_and_the_others_succeed(server: ServerProcess) -> None:
    async def scenario() -> list[Any]:
        client = aiohttpclient.InferenceServerClient(server.http_url, conn_limit=16)
        try:

            async def infer(value: float, request_id: str) -> np.ndarray[Any, Any]:
                tensor = aiohttpclient.InferInput("X", [1, 4], "FP32")
                tensor.set_data_from_numpy(rows(value))
                result = await client.infer("crashy", [tensor], request_id=request_id)
                output: np.ndarray[Any, Any] = result.as_numpy("Y")
                return output

            values = [1.0, 2.0, 3.0, POISON, 5.0, 6.0, 7.0, 8.0]  # a full batch of 8: it goes at once
            outcomes: list[Any] = await asyncio.gather(
                *(infer(v, f"req-{i}") for i, v in enumerate(values)), return_exceptions=True
            )
            return outcomes
        finally:
            await client.close()

    results = asyncio.run(asyncio.wait_for(scenario(), 120))
    poisoned = results.pop(3)
    for value, result in zip([1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0], results, strict=True):
        assert not isinstance(result, BaseException), result
        np.testing.assert_array_equal(result, rows(value))
    assert isinstance(poisoned, InferenceServerException), poisoned
    assert poisoned.status() == "400"
    message = poisoned.message()
    assert CULPRIT in message and "crashy" in message, message
    assert "killed by signal 6 (SIGABRT)" in message
    assert "(request id: req-3)" in message
    assert "Traceback" not in message and "stderr" not in message
    # The batch really was shared: the server ran its requests one by one after the second crash.
    assert "a batch of 8 requests crashed its worker 2 times" in server.logs()
    assert_serving(server, "crashy")


def test_poison_sent_again_and_again_never_makes_the_model_unavailable(server: ServerProcess) -> None:
    """More poison requests than the crash limit (5), on both protocols: each costs only itself."""
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    rest = httpclient.InferenceServerClient(server.http_url, network_timeout=60)
    try:
        for attempt in range(3):
            tensor = grpcclient.InferInput("X", [2, 4], "FP32")
            tensor.set_data_from_numpy(np.array([[0, 0, 0, 0], [0, POISON, 0, 0]], np.float32))
            with pytest.raises(InferenceServerException) as caught:
                grpc.infer("crashy", [tensor], request_id=f"grpc-{attempt}")
            assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
            assert CULPRIT in caught.value.message() and f"grpc-{attempt}" in caught.value.message()

            tensor = httpclient.InferInput("X", [1, 4], "FP32")
            tensor.set_data_from_numpy(rows(POISON))
            with pytest.raises(InferenceServerException) as caught:
                rest.infer("crashy", [tensor])
            assert caught.value.status() == "400" and CULPRIT in caught.value.message()
    finally:
        grpc.close()
        rest.close()
    assert_serving(server, "crashy")
    entry = httpx.get(f"http://{server.management_url}/models/crashy", timeout=10).json()[0]
    assert entry["status"] == "READY", entry
