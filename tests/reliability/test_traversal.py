"""Names and paths that try to leave the model repository, on every route of every protocol.

One server in explicit mode over ``BASE/repo``, with bait beside the repository (``BASE/1/model.onnx`` is what
``REPO/..`` would serve, ``BASE/outside`` a model a ``../outside`` or absolute name would load) and links that
lead out of it. Every defect found with a real request has its regression test here, through the client that
found it: raw HTTP paths (``http.client`` sends a path verbatim; httpx removes ``..`` segments even from
a ``raw_path``), tritonclient http and grpc, and the generated gRPC stub; then a walk of every route with
hostile names and versions that must all be answered 400 / INVALID_ARGUMENT naming the field, never 500 /
INTERNAL.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc
from onnx import helper, numpy_helper
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import add_sub_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

MODEL = add_sub_model("FP32", (-1, 3))


def external_data_model(location: str) -> bytes:
    """``Y = X + W`` whose initializer ``W`` is external data at ``location`` (relative to the model file)."""
    weight = numpy_helper.from_array(np.ones((3,), np.float32), "W")
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "12")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "external",
        [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [3])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@dataclass(frozen=True)
class Layout:
    base: Path
    repository: Path


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    base = tmp_path_factory.mktemp("traversal")
    repository = base / "repo"
    write_model(repository, "simple", MODEL)
    write_model(base, "1", MODEL, version="")  # BASE/1/model.onnx: what REPO/.. would serve as version 1
    write_model(base, "outside", MODEL)  # BASE/outside/1/model.onnx
    (base / "secret.yaml").write_text("max_batch_size: 2\n")
    (repository / "linked").symlink_to(base / "outside", target_is_directory=True)
    (repository / "alias").symlink_to(repository / "simple", target_is_directory=True)  # stays inside
    (repository / "vlink").mkdir()
    (repository / "vlink" / "1").symlink_to(base / "outside" / "1", target_is_directory=True)
    write_model(repository, "cfglink", MODEL)
    (repository / "cfglink" / "config.yaml").symlink_to(base / "secret.yaml")
    np.ones((3,), np.float32).tofile(base / "weights.bin")  # what an external-data escape would read
    (repository / "extdata" / "1").mkdir(parents=True)
    (repository / "extdata" / "1" / "model.onnx").write_bytes(external_data_model("../../../weights.bin"))
    return Layout(base, repository)


@pytest.fixture(scope="module")
def server(layout: Layout) -> Iterator[ServerProcess]:
    with start_server(layout.repository, "--model-control", "explicit", "--load-model", "simple") as handle:
        yield handle


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[Any]:
    with grpc.insecure_channel(server.grpc_url) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped


@pytest.fixture(scope="module")
def triton_http(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(server.http_url, network_timeout=30.0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def triton_grpc(server: ServerProcess) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    yield client
    client.close()


def raw_request(
    address: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """``method path`` sent exactly as written (no normalisation of ``..`` or of percent escapes)."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    answer: dict[str, Any] = json.loads(data) if data else {}
    return response.status, answer


def served_names(stub: Any) -> set[str]:
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=30)
    return {m.name for m in index.models}


def grpc_failure(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def load_request(name: str, files: dict[str, bytes] | None = None) -> pb.RepositoryModelLoadRequest:
    request = pb.RepositoryModelLoadRequest(model_name=name)
    if files is not None:
        request.parameters["config"].string_param = "{}"
        for key, content in files.items():
            request.parameters[key].bytes_param = content
    return request


# ----- the defects, each as it was found ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", "%2e%2e", "%2E%2e", ".", "%2fetc"])
def test_a_raw_dotdot_path_loads_nothing(server: ServerProcess, stub: Any, name: str) -> None:
    """``POST /v2/repository/models/../load`` served ``REPO/../1/model.onnx``."""
    status, body = raw_request(server.http_url, "POST", f"/v2/repository/models/{name}/load", b"{}")
    assert status == 400, body
    assert "path: model name" in body["error"] and "'/'" in body["error"]
    assert served_names(stub) == {"simple", "alias", "cfglink", "extdata", "linked", "vlink"}
    assert stub.ModelReady(pb.ModelReadyRequest(name="simple", version="1"), timeout=30).ready


@pytest.mark.parametrize("name", ["../outside", "<absolute>", "/", "outside/..", "a/b"])
def test_grpc_load_of_a_path_is_refused(layout: Layout, stub: Any, name: str) -> None:
    """``RepositoryModelLoad(model_name="/any/dir")`` or ``"../x"`` served models from outside."""
    name = str(layout.base / "outside") if name == "<absolute>" else name
    error = grpc_failure(stub.RepositoryModelLoad, load_request(name))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model_name" in (error.details() or "")
    assert name not in served_names(stub)


def test_grpc_load_with_files_writes_nothing_outside(layout: Layout, stub: Any) -> None:
    """With a ``file:1/model.onnx`` parameter the load CREATED that file, with the client's bytes, wherever
    the name pointed."""
    target = layout.base / "written"
    for name in (str(target), "../written", "../../written"):
        request = load_request(name, {"file:1/model.onnx": MODEL.SerializeToString()})
        error = grpc_failure(stub.RepositoryModelLoad, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    assert not target.exists()
    assert sorted(p.name for p in layout.base.iterdir()) == [
        "1",
        "outside",
        "repo",
        "secret.yaml",
        "weights.bin",
    ]


def test_tritonclient_loads_of_paths_are_refused(
    layout: Layout,
    triton_http: httpclient.InferenceServerClient,
    triton_grpc: grpcclient.InferenceServerClient,
) -> None:
    outside = str(layout.base / "outside")
    for name in ("../outside", outside):
        with pytest.raises(InferenceServerException) as caught:
            triton_grpc.load_model(name)
        assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
        with pytest.raises(InferenceServerException) as caught:
            triton_http.load_model(name)
        # tritonclient.http sends '/' unescaped: '..' reaches the server as a path segment of its own, an
        # absolute name as an empty segment. Either way the name rule answers, before any route.
        assert caught.value.status() == "400", caught.value.message()
    assert not triton_grpc.is_model_ready("outside")


@pytest.mark.parametrize(
    ("version", "shown"),
    [("²", "'\\xb2'"), ("9" * 5000, "cut, 5000 characters"), ("1.0", "'1.0'"), ("-1", "'-1'")],
    ids=["superscript-two", "5000-digits", "decimal", "negative"],
)
def test_odd_versions_are_client_errors_not_500(
    server: ServerProcess,
    triton_http: httpclient.InferenceServerClient,
    triton_grpc: grpcclient.InferenceServerClient,
    version: str,
    shown: str,
) -> None:
    """``isdigit()`` accepted '²' and then ``int()`` failed; 5,000 digits passed Python's int-string limit."""
    with pytest.raises(InferenceServerException) as caught:
        triton_http.get_model_metadata("simple", model_version=version)
    # (tritonclient.http sends the version unescaped: '²' as raw UTF-8, which the HTTP parser refuses first.)
    assert caught.value.status() == "400"
    path = f"/v2/models/simple/versions/{urllib.parse.quote(version)}"
    status, body = raw_request(server.http_url, "GET", path)
    assert status == 400 and "is not a version number" in body["error"] and shown in body["error"]
    with pytest.raises(InferenceServerException) as caught:
        triton_grpc.get_model_metadata("simple", model_version=version)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert caught.value.message().startswith("version ")  # the field of ModelMetadataRequest


def test_a_300_character_name_is_a_client_error_not_500(
    triton_http: httpclient.InferenceServerClient, triton_grpc: grpcclient.InferenceServerClient
) -> None:
    """A name of 300 characters reached the file system (ENAMETOOLONG, answered 500)."""
    name = "m" * 300
    with pytest.raises(InferenceServerException) as caught:
        triton_http.load_model(name)
    assert caught.value.status() == "400" and "1 to 128" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        triton_grpc.load_model(name, config="{}", files={"file:1/model.onnx": MODEL.SerializeToString()})
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT" and "1 to 128" in caught.value.message()


# ----- links and uploaded file names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "which"),
    [("linked", "linked"), ("vlink", "vlink/1"), ("cfglink", "cfglink/config.yaml")],
    ids=["model-folder", "version-folder", "config-file"],
)
def test_links_leading_outside_the_repository_are_refused(
    triton_grpc: grpcclient.InferenceServerClient, stub: Any, name: str, which: str
) -> None:
    index = {m.name: m for m in triton_grpc.get_model_repository_index().models}
    assert index[name].state == "UNAVAILABLE"
    for config in (None, "{}"):  # a config given with the load does not make the model servable
        with pytest.raises(InferenceServerException) as caught:
            triton_grpc.load_model(name, config=config)
        assert caught.value.status() != "StatusCode.INTERNAL"  # a failed load, in the load's own code
        assert f"{which} is a link that leads outside the model repository" in caught.value.message()
    assert not triton_grpc.is_model_ready(name)


def test_external_data_outside_the_model_folder_is_refused(
    triton_grpc: grpcclient.InferenceServerClient,
) -> None:
    """ONNX external data is a path inside the model file: ONNX Runtime refuses one that leaves the model's
    folder, for a model in the repository and an uploaded one alike (tested, since it is ORT's check)."""
    with pytest.raises(InferenceServerException) as caught:
        triton_grpc.load_model("extdata")
    assert caught.value.status() != "StatusCode.INTERNAL"
    assert "escapes model directory" in caught.value.message()
    for location in ("../../../weights.bin", "/etc/hostname"):
        with pytest.raises(InferenceServerException) as caught:
            triton_grpc.load_model(
                "uploaded", config="{}", files={"file:1/model.onnx": external_data_model(location)}
            )
        assert caught.value.status() != "StatusCode.INTERNAL"
        assert "External data path" in caught.value.message(), caught.value.message()
    assert not triton_grpc.is_model_ready("extdata") and not triton_grpc.is_model_ready("uploaded")


def test_a_link_that_stays_inside_is_followed(triton_grpc: grpcclient.InferenceServerClient) -> None:
    triton_grpc.load_model("alias")
    tensors = [grpcclient.InferInput(n, [1, 3], "FP32") for n in ("INPUT0", "INPUT1")]
    for tensor in tensors:
        tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
    result = triton_grpc.infer("alias", tensors)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 3), 2.0, np.float32))
    triton_grpc.unload_model("alias")


@pytest.mark.parametrize(
    "key",
    [
        "file:/etc/model.onnx",
        "file:1/../../escape.onnx",
        "file:../1/model.onnx",
        "file:1/./model.onnx",
        "file:1/.hidden",
        "file:1//model.onnx",
        "file:1/sub\\..\\model.onnx",
        "file:0/model.onnx",
        "file:1",
        "file:1/" + "d/" * 10 + "model.onnx",
        "file:1/model.onnx\x00.txt",
    ],
)
def test_upload_keys_stay_in_the_model_folder(layout: Layout, server: ServerProcess, key: str) -> None:
    """``file:<path>`` load parameters: no absolute paths, no ``..``, nothing outside the model's folder."""
    content = base64.b64encode(MODEL.SerializeToString()).decode()
    body = json.dumps({"parameters": {"config": "{}", key: content}}).encode()
    status, answer = raw_request(server.http_url, "POST", "/v2/repository/models/uploaded/load", body)
    assert status == 400, answer
    assert "file key" in answer["error"] and "must look like 'file:<version>/<file name>'" in answer["error"]
    assert sorted(p.name for p in layout.base.iterdir()) == [
        "1",
        "outside",
        "repo",
        "secret.yaml",
        "weights.bin",
    ]
    assert not (layout.repository / "uploaded").exists()


# ----- every route, every protocol, hostile names ---------------------------------------------------------

# As they reach the server: REST gets each as one raw path segment (percent escapes decoded by the server).
HOSTILE_SEGMENTS = {
    "dotdot": "..",
    "dot": ".",
    "encoded-dotdot": "%2e%2e",
    "encoded-slash": "%2Fetc%2Fpasswd",
    "absolute": "%2Fabs",
    "nul": "a%00b",
    "newline": "a%0Ab",
    "space": "a%20b",
    "backslash": "..%5C..%5Cx",
    "superscript": "%C2%B2",
    "not-utf8": "%FF%FE",
    "300-chars": "n" * 300,
    "hidden": ".hidden",
}
HOSTILE_NAMES = {  # over gRPC, as strings
    "dotdot": "..",
    "dot": ".",
    "climb": "../x",
    "absolute": "/abs",
    "literal-escape": "%2e%2e",
    "nul": "a\x00b",
    "tab": "a\tb",
    "backslash": "..\\x",
    "superscript": "²",
    "300-chars": "n" * 300,
    "empty": "",
}
HOSTILE_VERSIONS = {
    "superscript": "²",
    "5000-digits": "9" * 5000,
    "decimal": "1.0",
    "negative": "-1",
    "climb": "../1",
    "arabic-indic": "\u0661",  # a digit to str.isdigit(), not to the rule
}
REST_NAMED = [
    ("GET", "/v2/models/{}"),
    ("GET", "/v2/models/{}/ready"),
    ("GET", "/v2/models/{}/config"),
    ("GET", "/v2/models/{}/stats"),
    ("POST", "/v2/models/{}/infer"),
    ("GET", "/v2/models/{}/versions/1"),
    ("POST", "/v2/models/{}/versions/1/infer"),
    ("POST", "/v2/repository/models/{}/load"),
    ("POST", "/v2/repository/models/{}/unload"),
]
REST_VERSIONED = [
    ("GET", "/v2/models/simple/versions/{}"),
    ("GET", "/v2/models/simple/versions/{}/ready"),
    ("GET", "/v2/models/simple/versions/{}/config"),
    ("GET", "/v2/models/simple/versions/{}/stats"),
    ("POST", "/v2/models/simple/versions/{}/infer"),
]
MANAGEMENT_NAMED = [
    ("GET", "/models/{}"),
    ("PUT", "/models/{}"),
    ("DELETE", "/models/{}"),
    ("GET", "/models/{}/1"),
]
MANAGEMENT_VERSIONED = [
    ("GET", "/models/simple/{}"),
    ("PUT", "/models/simple/{}"),
    ("DELETE", "/models/simple/{}"),
]
GRPC_NAMED = {  # RPC -> (request class, name field, version field or None)
    "ModelReady": (pb.ModelReadyRequest, "name", "version"),
    "ModelMetadata": (pb.ModelMetadataRequest, "name", "version"),
    "ModelConfig": (pb.ModelConfigRequest, "name", "version"),
    "ModelStatistics": (pb.ModelStatisticsRequest, "name", "version"),
    "ModelInfer": (pb.ModelInferRequest, "model_name", "model_version"),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, "model_name", None),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, "model_name", None),
}


def test_every_rest_route_refuses_hostile_names_and_versions(server: ServerProcess) -> None:
    refusals = []
    cases = [(m, p.format(s), "model name") for m, p in REST_NAMED for s in HOSTILE_SEGMENTS.values()]
    versions = [urllib.parse.quote(v, safe="") for v in HOSTILE_VERSIONS.values()]
    cases += [(m, p.format(v), "model version") for m, p in REST_VERSIONED for v in versions]
    for method, path, field in cases:
        status, body = raw_request(server.http_url, method, path, b"{}" if method == "POST" else b"")
        if status != 400 or f"path: {field}" not in body.get("error", ""):
            refusals.append(f"{method} {path[:80]}: {status} {body}")
    assert not refusals, "\n".join(refusals)
    assert raw_request(server.http_url, "GET", "/v2/models/simple/ready")[0] == 200


def test_every_grpc_rpc_refuses_hostile_names_and_versions(stub: Any) -> None:
    wrong = []
    for rpc, (request_class, name_field, version_field) in GRPC_NAMED.items():
        cases = [({name_field: n}, name_field) for n in HOSTILE_NAMES.values()]
        if rpc == "ModelStatistics":  # an empty name asks for every model there
            cases = [c for c in cases if c[0][name_field]]
        if version_field is not None:
            cases += [
                ({name_field: "simple", version_field: v}, version_field) for v in HOSTILE_VERSIONS.values()
            ]
        for fields, field in cases:
            try:
                getattr(stub, rpc)(request_class(**fields), timeout=30)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.INVALID_ARGUMENT and (error.details() or "").startswith(
                    field
                ):
                    continue
                wrong.append(f"{rpc} {str(fields)[:80]}: {error.code()} {error.details()}")
            else:
                wrong.append(f"{rpc} {str(fields)[:80]}: answered")
    assert not wrong, "\n".join(wrong)
    assert stub.ModelReady(pb.ModelReadyRequest(name="simple"), timeout=30).ready


def test_the_stream_refuses_hostile_names_per_message(stub: Any) -> None:
    def requests() -> Iterator[pb.ModelInferRequest]:
        for name in HOSTILE_NAMES.values():
            yield pb.ModelInferRequest(model_name=name)
        for version in HOSTILE_VERSIONS.values():
            yield pb.ModelInferRequest(model_name="simple", model_version=version)

    answers = list(stub.ModelStreamInfer(requests(), timeout=30))
    assert len(answers) == len(HOSTILE_NAMES) + len(HOSTILE_VERSIONS)
    fields = ["model_name"] * len(HOSTILE_NAMES) + ["model_version"] * len(HOSTILE_VERSIONS)
    for answer, field in zip(answers, fields, strict=True):
        assert answer.error_message.startswith(field), answer.error_message


def test_every_management_route_refuses_hostile_names_and_versions(server: ServerProcess) -> None:
    refusals = []
    cases = [
        (m, p.format(s), "path: model name") for m, p in MANAGEMENT_NAMED for s in HOSTILE_SEGMENTS.values()
    ]
    # TorchServe writes version 2 as "2.0", so its management API takes "1.0" as version 1
    # (test_torchserve_management.py); a fraction that is not zero is still no version.
    hostile = {**HOSTILE_VERSIONS, "decimal": "1.5"}
    versions = [urllib.parse.quote(v, safe="") for v in hostile.values()]
    cases += [(m, p.format(v), "path: model version") for m, p in MANAGEMENT_VERSIONED for v in versions]
    cases += [
        ("POST", f"/models?url={urllib.parse.quote(n, safe='')}", "query parameter 'url'")
        for n in HOSTILE_NAMES.values()
    ]
    for method, path, field in cases:
        status, body = raw_request(server.management_url, method, path)
        if status != 400 or field not in body.get("message", ""):
            refusals.append(f"{method} {path[:80]}: {status} {body}")
    assert not refusals, "\n".join(refusals)


def test_unknown_but_valid_names_are_not_found_not_refused(
    server: ServerProcess, stub: Any, triton_http: httpclient.InferenceServerClient
) -> None:
    """The rule refuses only what can never be a model: a well-formed unknown name is unknown."""
    status, body = raw_request(server.management_url, "GET", "/models/no_such_model")
    assert status == 404 and "'no_such_model'" in body["message"]
    with pytest.raises(InferenceServerException) as caught:
        triton_http.get_model_metadata("no_such_model")
    assert "unknown model" in caught.value.message()
    error = grpc_failure(stub.ModelMetadata, pb.ModelMetadataRequest(name="no_such_model"))
    assert "unknown model" in (error.details() or "")
    for name in ("a.b", "v1-2_3", "x+y@z=w,~"):  # the rule's other characters stay names
        error = grpc_failure(stub.ModelConfig, pb.ModelConfigRequest(name=name))
        assert "unknown model" in (error.details() or ""), name


def test_nothing_was_written_outside_the_repository(layout: Layout) -> None:
    assert sorted(os.listdir(layout.base)) == ["1", "outside", "repo", "secret.yaml", "weights.bin"]
    assert sorted(os.listdir(layout.repository)) == [
        "alias",
        "cfglink",
        "extdata",
        "linked",
        "simple",
        "vlink",
    ]
