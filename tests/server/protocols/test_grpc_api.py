"""The non-inference RPCs over gRPC against the shared real server, with tritonclient.grpc and grpcio:
health, metadata, model config, statistics, repository index, grpc.health.v1 and server reflection.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tritonclient.utils import InferenceServerException

from tests.helpers.server_process import ServerProcess
from tests.server.cases import CORRUPT_MODEL
from tests.server.conftest import ALL_TYPES, VERSIONED

SERVICE = "inference.GRPCInferenceService"


def failure(call: Any, *args: Any, **kwargs: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call(*args, **kwargs)
    return caught.value


def test_health(grpc_client: grpcclient.InferenceServerClient) -> None:
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    assert grpc_client.is_model_ready(ALL_TYPES)
    assert grpc_client.is_model_ready(VERSIONED, "1")
    assert grpc_client.is_model_ready(VERSIONED, "3")
    assert not grpc_client.is_model_ready(VERSIONED, "2")  # on disk, not in the version policy
    assert not grpc_client.is_model_ready("no_such_model")
    assert not grpc_client.is_model_ready(CORRUPT_MODEL)


def test_server_metadata_matches_rest(
    grpc_client: grpcclient.InferenceServerClient, server: ServerProcess
) -> None:
    metadata = grpc_client.get_server_metadata()
    rest = httpclient.InferenceServerClient(server.http_url).get_server_metadata()
    assert metadata.name == rest["name"] == "modelport"
    assert metadata.version == rest["version"]
    assert list(metadata.extensions) == rest["extensions"]
    assert {"model_repository", "statistics", "model_configuration"} <= set(metadata.extensions)


def test_model_metadata(grpc_client: grpcclient.InferenceServerClient) -> None:
    metadata = grpc_client.get_model_metadata(ALL_TYPES)
    assert (metadata.name, metadata.platform, list(metadata.versions)) == (
        ALL_TYPES,
        "onnxruntime_onnx",
        ["1"],
    )
    inputs = {t.name: (t.datatype, list(t.shape)) for t in metadata.inputs}
    assert inputs["INPUT_FP16"] == ("FP16", [-1, 4])  # the leading -1 is the batch
    assert inputs["INPUT_BYTES"] == ("BYTES", [-1, 4])
    assert [t.name for t in metadata.outputs][:2] == ["OUTPUT_BOOL", "OUTPUT_UINT8"]
    assert list(grpc_client.get_model_metadata(VERSIONED).versions) == ["1", "3"]
    assert grpc_client.get_model_metadata(VERSIONED, "1").name == VERSIONED


def test_unknown_model_and_version_are_invalid_argument(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    unknown = failure(grpc_client.get_model_metadata, "no_such_model")
    assert unknown.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unknown model: 'no_such_model'" in unknown.message()
    version = failure(grpc_client.get_model_config, VERSIONED, "7")
    assert version.status() == "StatusCode.INVALID_ARGUMENT"
    assert "version 7 is not found" in version.message()


def test_model_config_parses_in_tritonclient(grpc_client: grpcclient.InferenceServerClient) -> None:
    config = grpc_client.get_model_config("case_fp32").config
    assert (config.name, config.platform, config.backend) == ("case_fp32", "onnxruntime_onnx", "onnxruntime")
    assert config.max_batch_size == 8
    assert config.input[0].name == "INPUT0"
    assert config.input[0].data_type == grpcclient.model_config_pb2.TYPE_FP32
    assert list(config.input[0].dims) == [4]  # without the batch dimension
    assert config.output[0].data_type == grpcclient.model_config_pb2.TYPE_FP32
    assert not config.model_transaction_policy.decoupled
    text = grpc_client.get_model_config("case_text").config
    assert text.input[0].data_type == grpcclient.model_config_pb2.TYPE_STRING


def test_model_config_agrees_with_rest(
    grpc_client: grpcclient.InferenceServerClient, server: ServerProcess
) -> None:
    rest = httpclient.InferenceServerClient(server.http_url).get_model_config(ALL_TYPES)
    config = grpc_client.get_model_config(ALL_TYPES, as_json=True)["config"]
    for key in ("name", "platform", "backend", "max_batch_size", "default_model_filename"):
        assert str(config.get(key, "")) == str(rest.get(key, "")), key
    assert [(i["name"], i["data_type"]) for i in config["input"]] == [
        (i["name"], i["data_type"]) for i in rest["input"]
    ]


def test_statistics_count_grpc_inferences(grpc_client: grpcclient.InferenceServerClient) -> None:
    def successes() -> int:
        stats = grpc_client.get_inference_statistics("simple").model_stats
        assert [(s.name, s.version) for s in stats] == [("simple", "1")]
        return int(stats[0].inference_stats.success.count)

    before = successes()
    tensors = [grpcclient.InferInput(n, [2, 3], "FP32") for n in ("INPUT0", "INPUT1")]
    for tensor in tensors:
        tensor.set_data_from_numpy(np.ones((2, 3), dtype=np.float32))
    for _ in range(2):
        grpc_client.infer("simple", tensors)
    stats = grpc_client.get_inference_statistics("simple").model_stats[0]
    assert successes() == before + 2
    assert stats.inference_count >= 4  # rows, not requests
    assert stats.last_inference > 0
    everything = grpc_client.get_inference_statistics().model_stats
    assert {"simple", ALL_TYPES} <= {s.name for s in everything}
    assert "unknown model" in failure(grpc_client.get_inference_statistics, "no_such_model").message()


def test_repository_index_lists_failed_models_with_their_reason(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    index = {(m.name, m.version): m for m in grpc_client.get_model_repository_index().models}
    assert index[(ALL_TYPES, "1")].state == "READY"
    corrupt = [m for (name, _), m in index.items() if name == CORRUPT_MODEL]
    assert corrupt and corrupt[0].state == "UNAVAILABLE"
    assert "not a valid ONNX model" in corrupt[0].reason


def test_load_and_unload_need_explicit_model_control(grpc_client: grpcclient.InferenceServerClient) -> None:
    for call in (grpc_client.load_model, grpc_client.unload_model):
        error = failure(call, "simple")
        assert error.status() == "StatusCode.UNIMPLEMENTED"
        assert "--model-control explicit" in error.message()
    assert grpc_client.is_model_ready("simple")


def test_grpc_health_service(grpc_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(grpc_channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == serving
    assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10).status == serving
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_describes_the_services(grpc_channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(grpc_channel)
    services = set(database.get_services())
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
    pool: Any = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName(SERVICE)
    infer = service.methods_by_name["ModelInfer"]
    assert infer.input_type.full_name == "inference.ModelInferRequest"
    assert infer.output_type.fields_by_name["raw_output_contents"].number == 6
    config = pool.FindMessageTypeByName("inference.ModelConfig")  # from the imported model_config.proto
    assert config.fields_by_name["max_batch_size"].number == 4
    assert pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Check"] is not None


def test_an_rpc_the_service_does_not_have_is_unimplemented(grpc_channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_channel.unary_unary(f"/{SERVICE}/NoSuchRpc")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
