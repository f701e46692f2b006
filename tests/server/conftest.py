"""Shared fixtures: one repository of tiny real models and one real server over it for the whole session.

Tests that need their own server (hot reload, explicit control, shutdown) start it with
:func:`tests.helpers.server_process.start_server` on a repository of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.onnx_models import (
    add_sub_model,
    identity_all_model,
    identity_model,
    write_config,
    write_corrupt_model,
    write_model,
)
from tests.helpers.server_process import ServerProcess, start_server
from tests.server.cases import CASE_MODELS, CORRUPT_MODEL

# The versioned model: versions 1, 2, 3 on disk, version_policy {specific: [1, 3]}.
VERSIONED = "versioned"
BROKEN_CONFIG = "broken_config"
ALL_TYPES = "all_types"


def build_repository(root: Path) -> Path:
    """Write every model the shared server serves (and the ones it must refuse) into ``root``.

    Every served version runs in its own worker process(es), so the set is kept small.
    """
    write_model(root, ALL_TYPES, identity_all_model((-1, 4)))
    write_model(root, "simple", add_sub_model("FP32", (-1, 3)))
    for name, (model, config) in CASE_MODELS.items():
        write_model(root, name, model, config=config)
    write_corrupt_model(root, CORRUPT_MODEL)
    write_model(root, BROKEN_CONFIG, identity_model("FP32"))
    write_config(root, BROKEN_CONFIG, "session:\n  intra_op_threads: -2\nmax_batch_sise: 4\n")
    for version in (1, 2, 3):
        write_model(root, VERSIONED, identity_model("FP32"), version=version)
    write_config(root, VERSIONED, {"version_policy": {"specific": [1, 3]}})
    return root


@pytest.fixture(scope="session")
def serving_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="session")
def server(serving_repository: Path) -> Iterator[ServerProcess]:
    """The real server over :func:`serving_repository`, shared by every test that only reads."""
    with start_server(serving_repository) as process:
        yield process


@pytest.fixture
def http_client(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(server.http_url, network_timeout=30.0)
    yield client
    client.close()


# gRPC clients of whichever ``server`` a module uses (the shared one, or a module's own ``server`` fixture).
_GRPC_LIMIT = 2**31 - 1
_GRPC_OPTIONS = [
    ("grpc.max_send_message_length", _GRPC_LIMIT),
    ("grpc.max_receive_message_length", _GRPC_LIMIT),
]


@pytest.fixture
def grpc_client(server: ServerProcess) -> Iterator[grpcclient.InferenceServerClient]:
    """tritonclient.grpc on the server's gRPC port."""
    triton = grpcclient.InferenceServerClient(server.grpc_url)
    yield triton
    triton.close()


@pytest.fixture
def grpc_channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    """A plain grpcio channel (messages up to 2 GiB - 1 both ways, as the server's default)."""
    with grpc.insecure_channel(server.grpc_url, options=_GRPC_OPTIONS) as opened:
        yield opened


@pytest.fixture
def grpc_stub(grpc_channel: grpc.Channel) -> Any:
    """Our generated GRPCInferenceService stub over :func:`grpc_channel`."""
    return pb_grpc.GRPCInferenceServiceStub(grpc_channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped
