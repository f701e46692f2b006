"""TorchServe's inference API through the real server, called as TorchServe's documentation calls it (httpx
for its curl examples): on the REST port and on ``--torchserve-port``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from tests.helpers.onnx_models import mlp_model, mlp_reference, write_model
from tests.helpers.server_process import ServerProcess, start_server

LABELS = [f"n0{i} class_{i}" for i in range(10)]
MLP = mlp_model()
TWO_V2 = mlp_model(seed=5)
BATCHING = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 2000}}
SIDE = 8


def channel_mean_model(channels_first: bool) -> onnx.ModelProto:
    """``image`` FP32 [-1, 3, 8, 8] (or NHWC) -> ``mean`` FP32 [-1, 3]: each channel's mean pixel."""
    axes = [2, 3] if channels_first else [1, 2]
    shape: list[str | int | None] = ["batch", 3, SIDE, SIDE] if channels_first else ["batch", SIDE, SIDE, 3]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0)],
        "channel_mean",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", 3])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [2], axes)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("torchserve-repo")
    write_model(root, "mlp", MLP, config=BATCHING)
    write_model(root, "classifier", MLP, config=BATCHING)
    (root / "classifier" / "labels.txt").write_text("\n".join(LABELS) + "\n")
    write_model(root, "two", MLP, version=1, config={**BATCHING, "version_policy": {"all": True}})
    write_model(root, "two", TWO_V2, version=2)
    write_model(root, "nchw", channel_mean_model(True), config=BATCHING)
    write_model(root, "nhwc", channel_mean_model(False), config=BATCHING)
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with start_server(repository, "--torchserve-port", "0") as handle:
        yield handle


@pytest.fixture(scope="module", params=["http_port", "torchserve_port"])
def client(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[httpx.Client]:
    """A client of TorchServe's inference API on the REST port and on the TorchServe port."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.ports[request.param]}", timeout=30) as http:
        yield http


def _pickled() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


PICKLED = _pickled()


def _features(rows: int, seed: int = 1) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal((rows, 16)).astype(np.float32)


def _npy(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _image(colour: tuple[int, int, int], size: tuple[int, int], kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=kind)
    return buffer.getvalue()


def _error(response: httpx.Response, status: int, kind: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["type"] == kind, body
    for word in words:
        assert word in body["message"], body


def test_ping_is_healthy(client: httpx.Client) -> None:
    response = client.get("/ping")
    assert response.status_code == 200 and response.json() == {"status": "Healthy"}


def test_one_json_instance_is_answered_with_its_output(client: httpx.Client) -> None:
    features = _features(1)
    response = client.post("/predictions/mlp", json=features[0].tolist())
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json(), mlp_reference(MLP, features)[0], rtol=1e-4, atol=1e-6)
    wrapped = client.post("/predictions/mlp", json={"data": features[0].tolist()})
    np.testing.assert_allclose(wrapped.json(), response.json(), rtol=1e-6)
    named = client.post("/predictions/mlp", json={"features": features[0].tolist()})
    np.testing.assert_allclose(named.json(), response.json(), rtol=1e-6)


def test_a_list_of_instances_is_one_list_per_instance(client: httpx.Client) -> None:
    features = _features(5, seed=2)
    response = client.post("/predictions/mlp", json=features.tolist())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer) == 5
    np.testing.assert_allclose(answer, mlp_reference(MLP, features), rtol=1e-4, atol=1e-6)
    named = client.post("/predictions/mlp", json=[{"features": row.tolist()} for row in features])
    np.testing.assert_allclose(named.json(), answer, rtol=1e-6)


def test_a_list_of_instances_is_one_data_plane_request(server: ServerProcess, client: httpx.Client) -> None:
    """Its rows go to the batcher together: one request of 5 rows in Triton's statistics of the model."""

    def counts() -> tuple[int, int]:
        [entry] = httpx.get(f"http://{server.http_url}/v2/models/mlp/versions/1/stats").json()["model_stats"]
        return entry["inference_stats"]["success"]["count"], entry["inference_count"]

    requests, rows = counts()
    assert client.post("/predictions/mlp", json=_features(5, seed=9).tolist()).status_code == 200
    after_requests, after_rows = counts()
    assert (after_requests - requests, after_rows - rows) == (1, 5)


@pytest.mark.parametrize("content_type", ["application/x-npy", "application/octet-stream"])
def test_an_npy_body(client: httpx.Client, content_type: str) -> None:
    features = _features(3, seed=3)
    response = client.post("/predictions/mlp", content=_npy(features), headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json(), mlp_reference(MLP, features), rtol=1e-4, atol=1e-6)


def test_curl_upload_with_put(client: httpx.Client) -> None:
    # TorchServe's docs: curl http://localhost:8080/predictions/M -T file (curl -T sends PUT).
    features = _features(1, seed=4)
    response = client.put("/predictions/mlp", content=_npy(features[0]))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json(), mlp_reference(MLP, features)[0], rtol=1e-4, atol=1e-6)


def test_labels_give_the_image_classifier_top_5(client: httpx.Client) -> None:
    features = _features(2, seed=5)
    response = client.post("/predictions/classifier", json=features.tolist())
    assert response.status_code == 200, response.text
    expected = mlp_reference(MLP, features)
    for answer, probabilities in zip(response.json(), expected, strict=True):
        best = np.argsort(-probabilities)[:5]
        assert list(answer) == [LABELS[i] for i in best]
        np.testing.assert_allclose(list(answer.values()), probabilities[best], rtol=1e-4)
    single = client.post("/predictions/classifier", json=features[0].tolist()).json()
    assert isinstance(single, dict) and list(single) == list(response.json()[0])


@pytest.mark.parametrize("model", ["nchw", "nhwc"])
@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_an_image_is_decoded_and_resized(client: httpx.Client, model: str, kind: str) -> None:
    body = _image((255, 128, 0), (37, 21), kind)  # not 8x8: resized to the model's input
    response = client.post(f"/predictions/{model}", content=body)
    assert response.status_code == 200, response.text
    tolerance = 0.02 if kind == "PNG" else 0.05
    np.testing.assert_allclose(response.json(), [1.0, 128 / 255, 0.0], atol=tolerance)


def test_a_form_upload_as_curl_dash_f(client: httpx.Client) -> None:
    # TorchServe's docs: curl http://localhost:8080/predictions/M -F "data=@kitten_small.jpg"
    one = client.post(
        "/predictions/nchw", files={"data": ("kitten.png", _image((0, 255, 0), (16, 16), "PNG"))}
    )
    assert one.status_code == 200, one.text
    np.testing.assert_allclose(one.json(), [0.0, 1.0, 0.0], atol=0.02)
    # -F 'data=@a' -F 'data=@b': two instances, answered in order.
    files = [
        ("data", ("a.png", _image((255, 0, 0), (8, 8), "PNG"))),
        ("data", ("b.png", _image((0, 0, 255), (8, 8), "PNG"))),
    ]
    two = client.post("/predictions/nchw", files=files)
    assert two.status_code == 200, two.text
    np.testing.assert_allclose(two.json(), [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], atol=0.02)
    nameless = client.post(
        "/predictions/nchw", files={"picture": ("a.png", _image((1, 1, 1), (8, 8), "PNG"))}
    )
    _error(nameless, 400, "BadRequestException", '"data"')


def test_versions_and_the_version_written_as_torchserve_does(client: httpx.Client) -> None:
    features = _features(1, seed=6)
    v1 = mlp_reference(MLP, features)[0]
    v2 = mlp_reference(TWO_V2, features)[0]
    for path, expected in (
        ("/predictions/two/1", v1),
        ("/predictions/two/1.0", v1),
        ("/predictions/two/2.0", v2),
    ):
        response = client.post(path, json=features[0].tolist())
        assert response.status_code == 200, (path, response.text)
        np.testing.assert_allclose(response.json(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "answer", "words"),
    [
        ("/predictions/nope", b"[1]", (404, "ModelNotFoundException"), ("Model not found: nope",)),
        ("/predictions/two/7", b"[1]", (404, "ModelNotFoundException"), ("7", "two")),
        ("/predictions/mlp", b'{"features": [1, 2', (400, "BadRequestException"), ("not valid JSON",)),
        ("/predictions/mlp", b"[1, 2, 3]", (400, "BadRequestException"), ("features", "16")),
        ("/predictions/mlp", b"[[1, 2], [3]]", (400, "BadRequestException"), ("same length",)),
        (
            "/predictions/mlp",
            b"[[[1.0]]]",
            (400, "BadRequestException"),
            ("rank 1 (one instance)", "[1, 1, 1]"),
        ),
        ("/predictions/mlp", b'{"pixels": [1]}', (400, "BadRequestException"), ("pixels", "features")),
        ("/predictions/mlp", b"", (400, "BadRequestException"), ("empty",)),
        ("/predictions/mlp", b"\x93NUMPY broken", (400, "BadRequestException"), (".npy",)),
        (
            "/predictions/mlp",
            _npy(np.zeros((2, 16), np.float32))[:-8],
            (400, "BadRequestException"),
            ("truncated",),
        ),
        ("/predictions/mlp", PICKLED, (400, "BadRequestException"), ("pickle",)),
        ("/predictions/nchw", b"\x89PNG\r\n\x1a\ntruncated", (400, "BadRequestException"), ("PNG/JPEG",)),
        ("/explanations/mlp", b"[1]", (501, "NotImplementedException"), ("explanations",)),
        ("/explanations/nope", b"[1]", (404, "ModelNotFoundException"), ("nope",)),
    ],
    ids=[
        "unknown-model",
        "unknown-version",
        "malformed-json",
        "wrong-shape",
        "ragged-rows",
        "wrong-rank",
        "unknown-input-name",
        "empty",
        "broken-npy",
        "truncated-npy",
        "pickled-npy",
        "truncated-png",
        "explanations",
        "explanations-unknown",
    ],
)
def test_bad_requests_get_torchserve_errors(
    client: httpx.Client, path: str, body: bytes, answer: tuple[int, str], words: tuple[str, ...]
) -> None:
    _error(client.post(path, content=body), *answer, *words)
    assert client.get("/ping").json() == {"status": "Healthy"}  # and it keeps serving


def test_an_image_body_for_a_non_image_model_says_what_to_send(client: httpx.Client) -> None:
    response = client.post("/predictions/mlp", content=_image((1, 2, 3), (8, 8), "PNG"))
    _error(response, 400, "BadRequestException", "image-shaped", "features")


def test_an_oversized_image_is_413(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    Image.new("L", (7000, 6000)).save(buffer, format="PNG")  # 42 M pixels, a small file
    _error(
        client.post("/predictions/nchw", content=buffer.getvalue()),
        413,
        "RequestEntityTooLargeException",
        "pixels",
    )


def test_the_torchserve_port_answers_unknown_paths_as_torchserve(server: ServerProcess) -> None:
    base = f"http://127.0.0.1:{server.ports['torchserve_port']}"
    _error(httpx.get(f"{base}/nowhere"), 404, "ResourceNotFoundException", "/nowhere")
    _error(httpx.delete(f"{base}/predictions/mlp"), 405, "MethodNotAllowedException")
    document = httpx.get(f"{base}/api-description").json()
    assert {"/ping", "/predictions/{model_name}", "/explanations/{model_name}"} <= set(document["paths"])
    assert httpx.options(f"{base}/").json()["paths"] == document["paths"]


def test_a_model_loaded_on_demand_answers_its_first_prediction(repository: Path) -> None:
    args = ("--model-control", "explicit", "--load-on-demand")
    with start_server(repository, *args) as server:
        features = _features(1, seed=11)
        response = httpx.post(
            f"http://{server.http_url}/predictions/mlp", json=features[0].tolist(), timeout=60
        )
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json(), mlp_reference(MLP, features)[0], rtol=1e-4, atol=1e-6)
