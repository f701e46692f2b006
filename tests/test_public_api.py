"""Each package's public names: ``__all__`` is the set below, every name in it resolves, and importing a
package stays cheap (its modules and the heavy libraries behind them load when a name is first used).

A change to a package's public names is a deliberate change of this table.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest

PUBLIC: dict[str, set[str]] = {
    "modelport.converters": {
        "DEFAULT_MAX_BATCH_SIZE",
        "ConversionError",
        "ConversionReport",
        "CorruptSource",
        "ExportFailed",
        "FactoryOptions",
        "InvalidOption",
        "InvalidSamples",
        "KerasOptions",
        "MissingInputSpec",
        "OutputError",
        "OutputMismatch",
        "QuantizationReport",
        "QuantizeError",
        "QuantizeOptions",
        "QuantizeResult",
        "RepositoryConflict",
        "SavedModelOptions",
        "SourceNotFound",
        "SourceOptions",
        "TensorSpec",
        "TorchExportOptions",
        "TorchScriptOptions",
        "UnknownFormat",
        "UnsupportedOperator",
        "VerificationFailed",
        "VerifyOptions",
        "convert",
        "parse_input_spec",
        "quantize_model",
    },
    "modelport.converters.frontends": {
        "export_factory",
        "export_program",
        "export_saved_model",
        "export_torchscript",
        "factory_file",
        "load_keras",
    },
    "modelport.converters.quantize": {
        "AccuracyReport",
        "Mode",
        "OutputAccuracy",
        "QuantizationReport",
        "QuantizeOptions",
        "QuantizeResult",
        "quantize_model",
    },
    "modelport.server.protocols": {
        "ConnectionBudget",
        "GrpcServer",
        "HttpLimits",
        "build_grpc_server",
        "create_management_app",
        "create_rest_app",
        "descriptor_budget",
        "limited_protocol",
    },
    "modelport.server.batching": {"PooledExecutor"},
    "modelport.server.bench": set(),  # a command, not a library: its modules are imported by name
    "modelport.server.workers": {
        "Decision",
        "DelayWindow",
        "ModelLoadError",
        "Observation",
        "PoolSettings",
        "ScalingPolicy",
        "WorkerPool",
        "decide",
        "prestart",
        "read_signature",
    },
    "modelport.server.repository": {
        "PLATFORM",
        "ExplicitControl",
        "LoadedVersion",
        "ModelIndexEntry",
        "ModelManager",
        "Repository",
        "triton_model_config",
    },
    "modelport.server.observability": {
        "MetricsApp",
        "RequestRecorder",
        "ServerMetrics",
        "VersionMetrics",
        "VersionState",
        "VersionStatistics",
        "WorkerState",
        "client_request_id",
        "configure_logging",
        "internal_error",
        "new_request_id",
        "tag_with_request_id",
    },
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_the_public_set_and_every_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert len(module.__all__) == len(set(module.__all__)), f"{package}.__all__ repeats a name"
    assert set(module.__all__) == PUBLIC[package]
    for name in module.__all__:
        value = getattr(module, name)
        defined_in = getattr(value, "__module__", None)
        if isinstance(value, type | types.FunctionType):
            assert isinstance(defined_in, str) and defined_in.startswith(package), (name, defined_in)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'not_a_public_name'"):
        _ = module.not_a_public_name


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from modelport.converters import *", namespace)  # the lazy names included
    assert PUBLIC["modelport.converters"] <= set(namespace)
    from modelport.converters import QuantizeOptions, quantize_model
    from modelport.converters.quantize.api import QuantizeOptions as Defined
    from modelport.converters.quantize.api import quantize_model as defined

    assert QuantizeOptions is Defined and quantize_model is defined


def test_quantize_errors_are_conversion_errors() -> None:
    from modelport.converters import ConversionError, InvalidOption, InvalidSamples, QuantizeError

    assert issubclass(QuantizeError, ConversionError)
    assert issubclass(InvalidSamples, InvalidOption)
    assert QuantizeError("x").exit_code == 1


_PROBE = """
import json, sys
for package in sys.argv[1:]:
    __import__(package)
heavy = ["onnxruntime", "torch", "tensorflow", "fastapi", "grpc", "modelport.converters.quantize.api"]
print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
"""


def _loaded_after_importing(*packages: str) -> list[str]:
    found = subprocess.run(
        [sys.executable, "-c", _PROBE, *packages], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(found.stdout)
    return loaded


def test_importing_the_server_packages_imports_none_of_their_modules() -> None:
    # A worker child importing its own module must not pull in FastAPI and gRPC through its package, nor
    # the parent ONNX Runtime through the workers package.
    packages = [name for name in PUBLIC if name.startswith("modelport.server.")]
    assert _loaded_after_importing(*packages) == []


def test_importing_the_converters_leaves_the_frameworks_and_the_quantizer_unloaded() -> None:
    assert _loaded_after_importing("modelport.converters") == []
