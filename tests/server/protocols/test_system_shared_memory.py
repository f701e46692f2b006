"""Triton's system shared-memory extension against the shared real server, with tritonclient's own
``tritonclient.utils.shared_memory`` and both of its clients, unchanged: regions registered, inputs read
from them and outputs written into them (REST JSON, REST binary and gRPC), status and unregister; then the
refusals (bad keys, sizes and offsets, unknown regions), each with a message naming the region, and the
server still serving.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException, serialize_byte_tensor

from tests.helpers.server_process import ServerProcess

Client = httpclient.InferenceServerClient | grpcclient.InferenceServerClient
IN0 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
IN1 = np.array([[0.5, 0.25, 2.0], [1.0, 1.0, -1.0]], dtype=np.float32)
TENSOR_BYTES = IN0.nbytes  # 24


def unique(stem: str) -> str:
    return f"{stem}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["http", "grpc"])
def client(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[Any]:
    """tritonclient.http or tritonclient.grpc on the shared server."""
    opened: Any = (
        httpclient.InferenceServerClient(server.http_url, network_timeout=30.0)
        if request.param == "http"
        else grpcclient.InferenceServerClient(server.grpc_url)
    )
    yield opened
    opened.close()


class Regions:
    """Regions a test creates and registers; all unregistered and destroyed at the end."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.handles: list[tuple[str, Any]] = []

    def create(self, stem: str, byte_size: int, *, register: bool = True) -> tuple[str, str, Any]:
        name, key = unique(stem), "/" + unique(f"mp_{stem}")
        handle = shm.create_shared_memory_region(name, key, byte_size)
        self.handles.append((name, handle))
        if register:
            self.client.register_system_shared_memory(name, key, byte_size)
        return name, key, handle

    def close(self) -> None:
        for name, handle in self.handles:
            self.client.unregister_system_shared_memory(name)
            shm.destroy_shared_memory_region(handle)


@pytest.fixture
def regions(client: Any) -> Iterator[Regions]:
    made = Regions(client)
    yield made
    made.close()


def _module(client: Any) -> Any:
    return httpclient if isinstance(client, httpclient.InferenceServerClient) else grpcclient


def _status(client: Any, name: str = "") -> dict[str, dict[str, Any]]:
    """The status of one region or all, as {name: {"key", "offset", "byte_size"}} from either client."""
    if isinstance(client, httpclient.InferenceServerClient):
        rows = client.get_system_shared_memory_status(name)
        return {row["name"]: {k: row[k] for k in ("key", "offset", "byte_size")} for row in rows}
    answer = client.get_system_shared_memory_status(name)
    return {
        n: {"key": r.key, "offset": r.offset, "byte_size": r.byte_size} for n, r in answer.regions.items()
    }


@pytest.mark.parametrize("mixed", [False, True], ids=["all-in-shm", "one-of-each-inline"])
def test_inputs_and_outputs_travel_through_shared_memory(client: Any, regions: Regions, mixed: bool) -> None:
    """Triton's simple_*_shm_client: both inputs in one region, both outputs in another (the second at an
    offset); with ``mixed`` the second input and the first output travel inline (REST binary /
    raw_input_contents and raw_output_contents, whose entries keep the order of the outputs)."""
    module = _module(client)
    inputs_name, _, inputs = regions.create("inputs", 2 * TENSOR_BYTES)
    outputs_name, _, outputs = regions.create("outputs", 2 * TENSOR_BYTES)
    shm.set_shared_memory_region(inputs, [IN0, IN1])
    first = module.InferInput("INPUT0", [2, 3], "FP32")
    first.set_shared_memory(inputs_name, TENSOR_BYTES)
    second = module.InferInput("INPUT1", [2, 3], "FP32")
    if mixed:
        second.set_data_from_numpy(IN1)
    else:
        second.set_shared_memory(inputs_name, TENSOR_BYTES, offset=TENSOR_BYTES)
    wanted = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
    if not mixed:
        wanted[0].set_shared_memory(outputs_name, TENSOR_BYTES)
    wanted[1].set_shared_memory(outputs_name, TENSOR_BYTES, offset=TENSOR_BYTES)
    result = client.infer("simple", [first, second], outputs=wanted)
    for index, (name, expected) in enumerate((("OUTPUT0", IN0 + IN1), ("OUTPUT1", IN0 - IN1))):
        output = result.get_output(name)
        datatype = output["datatype"] if isinstance(output, dict) else output.datatype
        shape = output["shape"] if isinstance(output, dict) else list(output.shape)
        assert (datatype, shape) == ("FP32", [2, 3])
        if mixed and index == 0:  # inline, before an output in shared memory
            np.testing.assert_array_equal(result.as_numpy(name), expected)
            continue
        if isinstance(output, dict):  # REST: parameters, no data
            assert "data" not in output
            assert output["parameters"]["shared_memory_region"] == outputs_name
        else:  # gRPC: an empty raw entry keeps the outputs' order
            assert result.get_response().raw_output_contents[index] == b""
            assert output.parameters["shared_memory_region"].string_param == outputs_name
        got = shm.get_contents_as_numpy(outputs, np.float32, shape, offset=index * TENSOR_BYTES)
        np.testing.assert_array_equal(got, expected)


def test_grpc_stream_infer_reads_and_writes_shared_memory(server: ServerProcess) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    regions = Regions(client)
    try:
        in_name, _, in_handle = regions.create("stream_in", 2 * TENSOR_BYTES)
        out_name, _, out_handle = regions.create("stream_out", TENSOR_BYTES)
        shm.set_shared_memory_region(in_handle, [IN0, IN1])
        answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        tensors = [grpcclient.InferInput(name, [2, 3], "FP32") for name in ("INPUT0", "INPUT1")]
        for index, tensor in enumerate(tensors):
            tensor.set_shared_memory(in_name, TENSOR_BYTES, offset=index * TENSOR_BYTES)
        wanted = grpcclient.InferRequestedOutput("OUTPUT1")
        wanted.set_shared_memory(out_name, TENSOR_BYTES)
        client.async_stream_infer("simple", tensors, outputs=[wanted])
        result, error = answers.get(timeout=30)
        client.stop_stream()
        assert (
            error is None
            and result.get_output("OUTPUT1").parameters["shared_memory_byte_size"].int64_param == 24
        )
        np.testing.assert_array_equal(shm.get_contents_as_numpy(out_handle, np.float32, [2, 3]), IN0 - IN1)
    finally:
        regions.close()
        client.close()


def test_rest_json_request_and_answer_carry_the_parameters(server: ServerProcess) -> None:
    """A pure JSON request (no binary part): the answer's outputs carry the region parameters, no data."""
    name, key = unique("json"), "/" + unique("mp_json")
    handle = shm.create_shared_memory_region(name, key, 3 * TENSOR_BYTES)
    base = f"http://{server.http_url}/v2"
    try:
        with httpx.Client(timeout=30) as rest:
            assert rest.post(f"{base}/systemsharedmemory/region/{name}/register", json={
                "key": key, "offset": 0, "byte_size": 3 * TENSOR_BYTES,
            }).status_code == 200  # fmt: skip
            shm.set_shared_memory_region(handle, [IN0])
            place = {"shared_memory_region": name, "shared_memory_byte_size": TENSOR_BYTES}
            body = {
                "inputs": [
                    {"name": "INPUT0", "datatype": "FP32", "shape": [2, 3], "parameters": place},
                    {"name": "INPUT1", "datatype": "FP32", "shape": [2, 3], "data": IN1.ravel().tolist()},
                ],
                "outputs": [
                    {"name": "OUTPUT0", "parameters": {**place, "shared_memory_offset": TENSOR_BYTES}},
                    {"name": "OUTPUT1"},
                ],
            }
            answer = rest.post(f"{base}/models/simple/infer", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/json"
            first, second = answer.json()["outputs"]
            assert first == {
                "name": "OUTPUT0",
                "datatype": "FP32",
                "shape": [2, 3],
                "parameters": {**place, "shared_memory_offset": TENSOR_BYTES},
            }
            np.testing.assert_array_equal(np.array(second["data"], np.float32).reshape(2, 3), IN0 - IN1)
            got = shm.get_contents_as_numpy(handle, np.float32, [2, 3], offset=TENSOR_BYTES)
            np.testing.assert_array_equal(got, IN0 + IN1)
            rest.post(f"{base}/systemsharedmemory/region/{name}/unregister")
    finally:
        shm.destroy_shared_memory_region(handle)


def test_bytes_tensors_in_shared_memory(client: Any, regions: Regions) -> None:
    module = _module(client)
    values = np.array([b"shared", b"", "memory ✓".encode()], dtype=np.object_)
    serialized = serialize_byte_tensor(values)
    size = len(serialized.item())
    in_name, _, in_handle = regions.create("text_in", size)
    out_name, _, out_handle = regions.create("text_out", size + 16)
    shm.set_shared_memory_region(in_handle, [serialized])
    text = module.InferInput("INPUT0", [3], "BYTES")
    text.set_shared_memory(in_name, size)
    wanted = module.InferRequestedOutput("OUTPUT0")
    wanted.set_shared_memory(out_name, size + 16)
    client.infer("case_text", [text], outputs=[wanted])
    np.testing.assert_array_equal(shm.get_contents_as_numpy(out_handle, np.object_, [3]), values)


def test_status_and_unregister(client: Any) -> None:
    handle = shm.create_shared_memory_region("x", "/" + unique("mp_status"), 4096)
    first, second = unique("first"), unique("second")
    key = handle._shm_key
    try:
        client.register_system_shared_memory(first, key, 1024)
        client.register_system_shared_memory(second, key, 1024, offset=2048)
        every = _status(client)
        assert every[first] == {"key": key, "offset": 0, "byte_size": 1024}
        assert every[second] == {"key": key, "offset": 2048, "byte_size": 1024}
        assert _status(client, second) == {second: every[second]}
        client.unregister_system_shared_memory(first)
        assert first not in _status(client) and second in _status(client)
        client.unregister_system_shared_memory(first)  # no longer registered: no error, as in Triton
        client.unregister_system_shared_memory(second)
        with pytest.raises(InferenceServerException) as caught:
            _status(client, second)
        assert f"unable to find system shared memory region: '{second}'" in caught.value.message()
        assert caught.value.status() in ("404", "StatusCode.NOT_FOUND")
    finally:
        shm.destroy_shared_memory_region(handle)


def test_registering_a_name_twice_is_an_error(client: Any, regions: Regions) -> None:
    name, key, _ = regions.create("twice", 64)
    with pytest.raises(InferenceServerException) as caught:
        client.register_system_shared_memory(name, key, 64)
    assert f"region '{name}' is already registered" in caught.value.message()
    assert caught.value.status() in ("400", "StatusCode.ALREADY_EXISTS")


def test_unregister_and_register_again_under_traffic(server: ServerProcess) -> None:
    """Four clients infer from a region while a fifth unregisters and registers it again, over and over
    (bounded: 40 requests each): every answer is right or a clean 400 naming the region, never a crash."""
    name, key = unique("churn"), "/" + unique("mp_churn")
    handle = shm.create_shared_memory_region(name, key, 2 * TENSOR_BYTES)
    shm.set_shared_memory_region(handle, [IN0, IN1])
    base = f"http://{server.http_url}/v2"
    register = {"key": key, "offset": 0, "byte_size": 2 * TENSOR_BYTES}
    body = {
        "inputs": [
            {"name": tensor, "datatype": "FP32", "shape": [2, 3], "parameters": _placed(name, 24, 24 * i)}
            for i, tensor in enumerate(("INPUT0", "INPUT1"))
        ],
        "outputs": [{"name": "OUTPUT0"}],
    }
    outcomes: list[str] = []
    done = threading.Event()

    def infer() -> None:
        with httpx.Client(timeout=30) as rest:
            for _ in range(40):
                answer = rest.post(f"{base}/models/simple/infer", json=body)
                if answer.status_code == 200:
                    data = np.array(answer.json()["outputs"][0]["data"], np.float32).reshape(2, 3)
                    outcomes.append("right" if np.array_equal(data, IN0 + IN1) else "WRONG")
                elif f"unable to find system shared memory region '{name}'" in answer.json()["error"]:
                    outcomes.append("unregistered")
                else:
                    outcomes.append(f"{answer.status_code} {answer.text}")

    def churn() -> None:
        with httpx.Client(timeout=30) as rest:
            while not done.is_set():
                rest.post(f"{base}/systemsharedmemory/region/{name}/register", json=register)
                time.sleep(0.005)
                rest.post(f"{base}/systemsharedmemory/region/{name}/unregister")

    churner = threading.Thread(target=churn)
    clients = [threading.Thread(target=infer) for _ in range(4)]
    try:
        churner.start()
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(120)
    finally:
        done.set()
        churner.join(30)
        httpx.post(f"{base}/systemsharedmemory/region/{name}/unregister", timeout=30)
        shm.destroy_shared_memory_region(handle)
    assert len(outcomes) == 160
    assert set(outcomes) <= {"right", "unregistered"}, [
        o for o in outcomes if o not in ("right", "unregistered")
    ]
    assert "right" in outcomes
    assert httpx.get(f"{base}/health/live", timeout=10).status_code == 200


def test_server_metadata_lists_system_shared_memory_only(
    http_client: httpclient.InferenceServerClient,
) -> None:
    extensions = http_client.get_server_metadata()["extensions"]
    assert "system_shared_memory" in extensions
    assert "cuda_shared_memory" not in extensions


# ----- refusals -------------------------------------------------------------------------------------------


@pytest.fixture
def rest(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}/v2", timeout=30) as opened:
        yield opened


@pytest.fixture
def shm_file() -> Iterator[str]:
    """A client's 4 KiB shared memory object: its key."""
    key = "/" + unique("mp_file")
    handle = shm.create_shared_memory_region("file", key, 4096)
    yield key
    shm.destroy_shared_memory_region(handle)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("/dev/shm/../etc/passwd", "is not valid"),
        ("../etc/passwd", "is not valid"),
        ("a/b", "is not valid"),
        ("..", "is not valid"),
        ("/.hidden", "is not valid"),
        ("", "'key' is missing"),
        (None, "'key' is missing"),
        ("/modelport-tensors", "reserved for the server's own memory"),
        ("/sem.mp-lock", "names a POSIX semaphore"),
        ("/no_such_key_" + "0" * 8, "no shared memory object has this key"),
    ],
)
def test_bad_keys_are_refused(rest: httpx.Client, key: str | None, message: str) -> None:
    name = unique("bad")
    body = {"offset": 0, "byte_size": 16} | ({} if key is None else {"key": key})
    answer = rest.post(f"/systemsharedmemory/region/{name}/register", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert f"region '{name}'" in error and message in error, error
    assert name not in {row["name"] for row in rest.get("/systemsharedmemory/status").json()}


def test_a_symbolic_link_in_dev_shm_is_refused(rest: httpx.Client, tmp_path: Any) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"s" * 4096)
    link = unique("mp_link")
    os.symlink(target, f"/dev/shm/{link}")
    try:
        answer = rest.post(
            "/systemsharedmemory/region/link/register", json={"key": f"/{link}", "byte_size": 16}
        )
    finally:
        os.unlink(f"/dev/shm/{link}")
    assert answer.status_code == 400
    assert "symbolic link" in answer.json()["error"]


@pytest.mark.parametrize(
    ("offset", "byte_size", "message"),
    [
        (0, 4097, "runs past the end of the shared memory object"),
        (4000, 200, "runs past the end of the shared memory object"),
        (0, 0, "'byte_size' must be at least 1"),
        (-1, 16, "'offset' must be a non-negative integer"),
        (0, "16", "'byte_size' must be a non-negative integer"),
    ],
)
def test_register_bounds(
    rest: httpx.Client, shm_file: str, offset: Any, byte_size: Any, message: str
) -> None:
    name = unique("bounds")
    body = {"key": shm_file, "offset": offset, "byte_size": byte_size}
    answer = rest.post(f"/systemsharedmemory/region/{name}/register", json=body)
    assert answer.status_code == 400, answer.text
    assert f"region '{name}'" in answer.json()["error"] and message in answer.json()["error"]


@pytest.fixture
def registered(rest: httpx.Client, shm_file: str) -> Iterator[str]:
    """A 64-byte region of :func:`shm_file` at offset 1024: its name."""
    name = unique("use")
    body = {"key": shm_file, "offset": 1024, "byte_size": 64}
    assert rest.post(f"/systemsharedmemory/region/{name}/register", json=body).status_code == 200
    yield name
    rest.post(f"/systemsharedmemory/region/{name}/unregister")


def _placed(region: str, byte_size: Any, offset: Any = None) -> dict[str, Any]:
    place = {"shared_memory_region": region, "shared_memory_byte_size": byte_size}
    return place if offset is None else {**place, "shared_memory_offset": offset}


INLINE = {"name": "INPUT1", "datatype": "FP32", "shape": [2, 3], "data": [0.0] * 6}


@pytest.mark.parametrize(
    ("inputs", "outputs", "message"),
    [
        ([_placed("missing", 24)], None, "unable to find system shared memory region 'missing'"),
        ([_placed("{r}", 24, 48)], None, "runs past the end of system shared memory region '{r}' (64 bytes)"),
        ([_placed("{r}", 24, 2**40)], None, "runs past the end of system shared memory region '{r}'"),
        ([_placed("{r}", 20)], None, "is 24 bytes, but shared_memory_byte_size is 20 (region '{r}')"),
        ([_placed("{r}", -4)], None, "'shared_memory_byte_size' must be a non-negative integer"),
        ([{"shared_memory_byte_size": 24}], None, "cannot be given without 'shared_memory_region'"),
        ([{"shared_memory_region": "{r}"}], None, "'shared_memory_byte_size' is missing"),
        ([{**_placed("{r}", 24), "data": True}], None, "send no 'data' or binary_data_size"),
        (None, [_placed("{r}", 24, 48)], "output 'OUTPUT0': shared_memory_offset 48"),
        (None, [_placed("{r}", 20)], "is 24 bytes, more than its shared_memory_byte_size 20 in region '{r}'"),
    ],
)
def test_bad_tensor_placements_are_refused_and_the_server_goes_on(
    rest: httpx.Client, registered: str, inputs: Any, outputs: Any, message: str
) -> None:
    def fill(value: Any) -> Any:
        return {k: v.format(r=registered) if isinstance(v, str) else v for k, v in value.items()}

    first: dict[str, Any] = {"name": "INPUT0", "datatype": "FP32", "shape": [2, 3], "data": [1.0] * 6}
    if inputs is not None:
        parameters = fill(inputs[0])
        first = {"name": "INPUT0", "datatype": "FP32", "shape": [2, 3], "parameters": parameters}
        if parameters.pop("data", False):
            first["data"] = [1.0] * 6
    body: dict[str, Any] = {"inputs": [first, INLINE]}
    if outputs is not None:
        body["outputs"] = [{"name": "OUTPUT0", "parameters": fill(outputs[0])}]
    answer = rest.post("/models/simple/infer", json=body)
    assert answer.status_code == 400, answer.text
    assert message.format(r=registered) in answer.json()["error"], answer.json()["error"]
    assert (
        rest.post("/models/simple/infer", json={"inputs": [{**INLINE, "name": "INPUT0"}, INLINE]}).status_code
        == 200
    )


def test_grpc_refusals_are_invalid_argument(server: ServerProcess, registered: str) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        first = grpcclient.InferInput("INPUT0", [2, 3], "FP32")
        first.set_shared_memory(registered, 24, offset=48)
        second = grpcclient.InferInput("INPUT1", [2, 3], "FP32")
        second.set_data_from_numpy(IN1)
        with pytest.raises(InferenceServerException) as caught:
            client.infer("simple", [first, second])
        assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert f"runs past the end of system shared memory region '{registered}'" in caught.value.message()
        with pytest.raises(InferenceServerException) as caught:
            client.register_system_shared_memory(unique("g"), "/dev/shm/../etc/passwd", 16)
        assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "never a path" in caught.value.message()
        assert client.is_server_live()
    finally:
        client.close()


def test_cuda_shared_memory_is_refused_with_a_reason(client: Any) -> None:
    for call in (
        client.get_cuda_shared_memory_status,
        lambda: client.register_cuda_shared_memory("r", b"\0" * 64, 0, 64),
        lambda: client.unregister_cuda_shared_memory("r"),
    ):
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert caught.value.status() in ("501", "StatusCode.UNIMPLEMENTED")
        assert "CUDA shared memory is not supported by modelport" in caught.value.message()
        assert "system shared memory" in caught.value.message()
