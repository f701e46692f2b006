"""A loaded version's configuration as Triton's ModelConfig JSON (``/config``, gRPC ``ModelConfig``).

Tools written for Triton (perf_analyzer, model_analyzer, ``tritonclient.get_model_config``) read this: dims
exclude the batch dimension when ``max_batch_size > 0``; the active execution provider is reported in
``parameters.execution_provider`` and in the instance group's kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..datatypes import by_name
from ..model_config import VersionPolicy

if TYPE_CHECKING:
    from ..executor import VersionSpec
    from ..inference import TensorSpec

__all__ = ["PLATFORM", "triton_model_config"]

# Triton's name for what serves the models (model metadata and config both report it).
PLATFORM = "onnxruntime_onnx"

_GPU_PROVIDERS = ("cuda", "tensorrt", "rocm", "migraphx", "dml")
_GRAPH_LEVELS = {"disable": -1, "basic": 1, "extended": 1, "all": 0}


def _version_policy(policy: VersionPolicy) -> dict[str, Any]:
    if policy.all:
        return {"all": {}}
    if policy.specific is not None:
        return {"specific": {"versions": list(policy.specific)}}
    return {"latest": {"num_versions": policy.latest or 1}}


def _tensor(spec: TensorSpec, batching: bool) -> dict[str, Any]:
    return {
        "name": spec.name,
        "data_type": by_name(spec.datatype).triton,
        "format": "FORMAT_NONE",
        "dims": list(spec.shape[1:] if batching else spec.shape),
        "is_shape_tensor": False,
    }


def triton_model_config(spec: VersionSpec) -> dict[str, Any]:
    """Triton's ModelConfig JSON for one loaded version."""
    resolved = spec.config
    config = resolved.config
    batching = resolved.max_batch_size > 0
    provider = spec.signature.provider
    inputs = [
        {**_tensor(t, batching), "allow_ragged_batch": False, "optional": False} for t in resolved.inputs
    ]
    outputs = [
        {**_tensor(t, batching), "label_filename": "labels.txt" if t.name in resolved.labels else ""}
        for t in resolved.outputs
    ]
    for tensor in (*inputs, *outputs):
        if tensor["name"] in resolved.reshapes:
            tensor["reshape"] = {"shape": list(resolved.reshapes[tensor["name"]])}
    result: dict[str, Any] = {
        "name": spec.name,
        "platform": PLATFORM,
        "backend": "onnxruntime",
        "version_policy": _version_policy(config.version_policy),
        "max_batch_size": resolved.max_batch_size,
        "input": inputs,
        "output": outputs,
        "instance_group": [
            {
                "name": f"{spec.name}_0",
                "kind": "KIND_GPU" if provider in _GPU_PROVIDERS else "KIND_CPU",
                "count": config.workers.min,
                "gpus": [],
            }
        ],
        "default_model_filename": config.model_filename,
        "optimization": {
            "graph": {"level": _GRAPH_LEVELS[config.session.graph_optimization_level]},
            "execution_accelerators": {
                "gpu_execution_accelerator": [
                    {"name": name, "parameters": {}} for name in config.execution_providers if name != "cpu"
                ],
                "cpu_execution_accelerator": [],
            },
        },
        "parameters": {
            "execution_provider": {"string_value": provider},
            "execution_providers": {"string_value": ",".join(config.execution_providers)},
            "intra_op_thread_count": {"string_value": str(config.session.intra_op_threads)},
            "inter_op_thread_count": {"string_value": str(config.session.inter_op_threads)},
        },
        "model_transaction_policy": {"decoupled": False},
        "response_cache": {"enable": config.response_cache.enable},
    }
    if batching:
        batcher = resolved.dynamic_batching
        if batcher is not None:
            result["dynamic_batching"] = {
                "preferred_batch_size": list(batcher.preferred_batch_sizes),
                "max_queue_delay_microseconds": batcher.max_queue_delay_us,
                "default_queue_policy": {
                    "timeout_action": "REJECT",
                    "default_timeout_microseconds": batcher.default_timeout_us,
                    "allow_timeout_override": True,
                    "max_queue_size": batcher.max_queue_size,
                },
            }
    return result
