"""Triton's extensions modelport does not implement answer the same reason over REST and gRPC.

tritonclient's CUDA shared-memory calls: REST answers 501 with ``{"error": ...}`` (not a bare 404, which
reads as a wrong URL), gRPC answers UNIMPLEMENTED, and both name the feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.server_process import ServerProcess

# tritonclient method (same name in both clients) -> what every answer names.
CALLS: dict[str, tuple[Callable[[Any], object], str]] = {
    "cuda shared memory": (lambda client: client.get_cuda_shared_memory_status(), "CUDA shared memory"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_rest_and_grpc_name_the_reason(server: ServerProcess, call: str) -> None:
    action, reason = CALLS[call]
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as rest_error:
            action(http)
        with pytest.raises(InferenceServerException) as grpc_error:
            action(grpc)
    finally:
        http.close()
        grpc.close()
    assert reason in rest_error.value.message() and "not supported by modelport" in rest_error.value.message()
    assert rest_error.value.status() == "501"
    assert reason in grpc_error.value.message()
    assert grpc_error.value.status() == "StatusCode.UNIMPLEMENTED"
