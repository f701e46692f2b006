"""Repository load and unload as management operations, and the uploads they bring.

Load and unload are refused unless ``--model-control explicit``; then they follow the management API's
rule on REST and gRPC alike: without a management token only loopback clients may make them, with one every
client must send it (``Authorization: Bearer``, gRPC ``authorization`` metadata). The repository index stays
public. The rule is tested through the network from this machine's own non-loopback address, and in process
with an ASGI client given a remote address (so it holds where no such address exists).

A load with ``file:`` contents keeps its files, written whole, for as long as a version loaded from them
serves: a worker started later (scaling up) reads the model from there.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.dataplane import DataPlane
from modelport.server.protocols.management_access import ManagementAccess, grpc_peer_host, is_loopback
from modelport.server.protocols.rest_api import create_rest_app
from modelport.server.repository.explicit import ExplicitControl
from modelport.server.repository.folders import Repository
from modelport.server.repository.model_manager import ModelManager
from modelport.server.settings import ServerSettings
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import add_sub_model, identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

TOKEN = "s3cret-token"
ADD_SUB = add_sub_model("FP32", (-1, 3))


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (the source address of its default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))  # a UDP connect sends nothing; it only picks a route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if is_loopback(address) or address == "0.0.0.0" else address


REMOTE = non_loopback_address()
needs_remote = pytest.mark.skipif(REMOTE is None, reason="this machine has no non-loopback IPv4 address")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explicit-control")
    write_model(root, "simple", ADD_SUB)
    return root


def failure(call: object, *args: object, **kwargs: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call(*args, **kwargs)  # type: ignore[operator]  # a client method
    return caught.value


def clients(
    server: ServerProcess, host: str
) -> tuple[httpclient.InferenceServerClient, grpcclient.InferenceServerClient]:
    http_port, grpc_port = server.ports["http_port"], server.ports["grpc_port"]
    return (
        httpclient.InferenceServerClient(f"{host}:{http_port}", network_timeout=30.0),
        grpcclient.InferenceServerClient(f"{host}:{grpc_port}"),
    )


def add_inputs(module: Any) -> list[Any]:
    tensors = [module.InferInput(n, [1, 3], "FP32") for n in ("INPUT0", "INPUT1")]
    for tensor in tensors:
        tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
    return tensors


# ----- the mode -------------------------------------------------------------------------------------------


def test_load_and_unload_are_refused_unless_explicit(repository: Path) -> None:
    with start_server(repository) as server:
        http, grpc_client = clients(server, "127.0.0.1")
        for call in (http.load_model, http.unload_model):
            error = failure(call, "simple")
            assert error.status() == "501" and "--model-control explicit" in error.message()
        for call in (grpc_client.load_model, grpc_client.unload_model):
            error = failure(call, "simple")
            assert (
                error.status() == "StatusCode.UNIMPLEMENTED" and "--model-control explicit" in error.message()
            )
        assert grpc_client.is_model_ready("simple")  # nothing was unloaded
        http.close()
        grpc_client.close()


# ----- who may load and unload ----------------------------------------------------------------------------


@needs_remote
def test_without_a_token_only_loopback_clients_load_and_unload(repository: Path) -> None:
    assert REMOTE is not None
    with start_server(repository, "--host", "0.0.0.0", "--model-control", "explicit") as server:
        remote_http, remote_grpc = clients(server, REMOTE)
        local_http, local_grpc = clients(server, "127.0.0.1")
        for call in (remote_http.load_model, remote_http.unload_model):
            error = failure(call, "simple")
            assert error.status() == "403" and "only from loopback clients" in error.message()
        for call in (remote_grpc.load_model, remote_grpc.unload_model):
            error = failure(call, "simple")
            assert error.status() == "StatusCode.PERMISSION_DENIED"
            assert "--management-token" in error.message()
        assert not local_grpc.is_model_ready("simple")
        # The index stays public.
        assert {m["name"] for m in remote_http.get_model_repository_index()} == {"simple"}
        local_http.load_model("simple")
        answer = remote_grpc.infer("simple", add_inputs(grpcclient)).as_numpy("OUTPUT0")
        np.testing.assert_array_equal(answer, np.full((1, 3), 2.0, np.float32))
        local_grpc.unload_model("simple")
        assert not remote_grpc.is_model_ready("simple")
        for client in (remote_http, remote_grpc, local_http, local_grpc):
            client.close()


def test_with_a_token_every_client_must_send_it(repository: Path) -> None:
    args = ("--host", "0.0.0.0", "--model-control", "explicit")
    with start_server(repository, *args, env={"MODELPORT_MANAGEMENT_TOKEN": TOKEN}) as server:
        hosts = ["127.0.0.1"] + ([REMOTE] if REMOTE else [])
        for host in hosts:
            http, grpc_client = clients(server, host)
            for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                error = failure(http.load_model, "simple", headers=headers)
                assert error.status() == "401" and "management token" in error.message(), host
                grpc_headers = {k.lower(): v for k, v in headers.items()} if headers else None
                error = failure(grpc_client.load_model, "simple", headers=grpc_headers)
                assert error.status() == "StatusCode.UNAUTHENTICATED", host
            http.load_model("simple", headers={"Authorization": f"Bearer {TOKEN}"})
            assert grpc_client.is_model_ready("simple")
            error = failure(grpc_client.unload_model, "simple")
            assert error.status() == "StatusCode.UNAUTHENTICATED"
            grpc_client.unload_model("simple", headers={"authorization": f"Bearer {TOKEN}"})
            assert not http.is_model_ready("simple")
            assert http.get_model_repository_index()  # public
            http.close()
            grpc_client.close()


def test_the_rest_rule_in_process_for_a_remote_client(repository: Path) -> None:
    """The REST app itself, called by an ASGI client whose address is remote: refused before the body or
    the repository is looked at; the loopback client is let through to the (real) explicit control."""
    settings = ServerSettings(repository=repository, model_control="explicit")
    manager = ModelManager(
        repository=Repository(repository),
        settings=settings,
        make_executor=lambda spec: None,  # type: ignore[arg-type,return-value]  # never called: nothing loads
    )
    app = create_rest_app(
        DataPlane(manager=manager, settings=settings),
        settings,
        explicit=ExplicitControl(manager=manager, settings=settings),
    )

    async def status(client: tuple[str, int], path: str) -> tuple[int, str]:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://modelport") as http:
            response = await http.post(path, content=b"not even json")
        return response.status_code, response.json()["error"]

    for remote in (("203.0.113.7", 4000), ("2001:db8::1", 4000), ("::ffff:192.0.2.9", 4000)):
        for action in ("load", "unload"):
            code, message = asyncio.run(status(remote, f"/v2/repository/models/simple/{action}"))
            assert code == 403 and f"repository {action} is a management operation" in message
    code, message = asyncio.run(status(("::ffff:127.0.0.1", 4000), "/v2/repository/models/simple/load"))
    assert code == 400 and "not valid JSON" in message  # past the rule, refused for its body


def test_the_rule_itself() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.10") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1") and is_loopback("[::1]")
    assert not any(is_loopback(h) for h in ("192.0.2.1", "::ffff:10.0.0.1", "", None, "localhost", "unix:x"))
    assert grpc_peer_host("ipv4:127.0.0.1:5000") == "127.0.0.1"
    assert grpc_peer_host("ipv6:[::1]:5000") == "::1"
    assert grpc_peer_host("unix:/tmp/socket") is None
    ManagementAccess(None).check("x", authorization=None, client_host="127.0.0.1")
    ManagementAccess("t").check("x", authorization="Bearer t", client_host="192.0.2.1")


# ----- uploads --------------------------------------------------------------------------------------------


def uploads(scratch: Path) -> list[Path]:
    """The upload folders of the server whose temporary directory is ``scratch``."""
    return sorted(scratch.glob("modelport-uploads-*/*"))


def test_uploads_live_as_long_as_their_model_serves(repository: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    args = ("--model-control", "explicit")
    with start_server(repository, *args, env={"TMPDIR": str(scratch)}) as server:
        grpc_client = grpcclient.InferenceServerClient(server.grpc_url)
        content = ADD_SUB.SerializeToString()
        config = json.dumps({"max_batch_size": 4, "workers": {"min": 1, "max": 1}})
        grpc_client.load_model("uploaded", config=config, files={"file:1/model.onnx": content})
        [first] = uploads(scratch)
        written = first / "uploaded" / "1" / "model.onnx"
        assert written.read_bytes() == content
        assert not list(first.rglob("*.partial"))  # each file was written beside, then renamed
        # A worker started after the load reads the uploaded file.
        with httpx.Client(base_url=f"http://{server.management_url}", timeout=60) as management:
            scaled = management.put("/models/uploaded", params={"min_worker": 2, "synchronous": "true"})
            assert scaled.status_code == 200, scaled.text
            [version] = management.get("/models/uploaded").json()
            assert [w["status"] for w in version["workers"]] == ["READY", "READY"]
        result = grpc_client.infer("uploaded", add_inputs(grpcclient))
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 3), 2.0, np.float32))
        # A reload from new files replaces the upload; the old one goes once nothing serves from it.
        grpc_client.load_model(
            "uploaded",
            config=json.dumps({"max_batch_size": 4}),
            files={"file:1/model.onnx": identity_model("FP32").SerializeToString()},
        )
        [second] = uploads(scratch)
        assert second != first and not first.exists()
        assert [t.name for t in grpc_client.get_model_metadata("uploaded").inputs] == ["INPUT0"]
        grpc_client.unload_model("uploaded")
        assert uploads(scratch) == []
        # A failed upload leaves nothing behind either.
        error = failure(
            grpc_client.load_model, "broken", config="{}", files={"file:1/model.onnx": b"not a model"}
        )
        assert error.status() != "StatusCode.INTERNAL" and "broken" in error.message()
        assert uploads(scratch) == []
        grpc_client.close()
