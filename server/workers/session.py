"""Open one model version as an ONNX Runtime session, and describe its graph in our terms.

Execution providers are tried in the configured order; an unavailable one falls back to the next with a
single warning, and the provider that is actually active is reported. ONNX Runtime's exceptions are
translated into :class:`ModelLoadError` with the file named (what they mean: :mod:`.ort_errors`). Custom
operator libraries (``session.custom_op_libraries``) are registered before the model is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config_files import UnreadableFile, resolve_inside
from ..datatypes import by_onnx
from ..inference import Signature, TensorSpec
from ..model_config import SessionConfig
from .ort_errors import load_failure

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "PROVIDERS",
    "ModelLoadError",
    "OpenSession",
    "open_session",
    "read_signature",
]

logger = logging.getLogger(__name__)

# config.yaml name -> ONNX Runtime provider name.
PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_SHORT_NAMES = {v: k for k, v in PROVIDERS.items()}


class ModelLoadError(RuntimeError):
    """A model file that ONNX Runtime cannot load, or whose graph the server cannot serve."""


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A loaded session, its graph signature as the graph states it, and the active provider."""

    session: onnxruntime.InferenceSession
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    provider: str  # short name: "cpu", "cuda", ...


def _custom_op_libraries(config: SessionConfig, folder: Path) -> list[Path]:
    """``session.custom_op_libraries`` resolved inside the model's ``folder`` (links too)."""
    paths = []
    for index, name in enumerate(config.custom_op_libraries):
        where = f"session.custom_op_libraries[{index}]"
        try:
            paths.append(resolve_inside(folder, name))
        except FileNotFoundError:
            raise ModelLoadError(f"{where}: '{name}' does not exist in the model's folder {folder}") from None
        except (UnreadableFile, OSError) as error:
            raise ModelLoadError(f"{where}: '{name}' {error}") from None
    return paths


def _session_options(config: SessionConfig, folder: Path) -> onnxruntime.SessionOptions:
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[config.graph_optimization_level]
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.log_severity_level = 3  # errors only: our own log line explains provider fallbacks
    for index, library in enumerate(_custom_op_libraries(config, folder)):
        try:
            options.register_custom_ops_library(str(library))
        except Exception as error:  # not a shared library, or no RegisterCustomOps in it
            where = f"session.custom_op_libraries[{index}]"
            raise ModelLoadError(load_failure(error, f"{where}: {library}")) from None
    return options


def _choose_providers(requested: tuple[str, ...], model: str, *, warn: bool) -> list[str]:
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    chosen = [PROVIDERS[name] for name in requested if PROVIDERS[name] in available]
    missing = [name for name in requested if PROVIDERS[name] not in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")  # ONNX Runtime's own last resort
    if missing and warn:
        logger.warning(
            "model %s: execution provider(s) %s not available in this onnxruntime build (%s); using %s",
            model,
            ", ".join(missing),
            ", ".join(sorted(_SHORT_NAMES.get(p, p) for p in available)),
            _SHORT_NAMES[chosen[0]],
        )
    return chosen


def _specs(args: list[Any], what: str) -> tuple[TensorSpec, ...]:
    specs = []
    for arg in args:
        try:
            datatype = by_onnx(arg.type).name
        except ValueError as error:
            raise ModelLoadError(f"{what}: tensor '{arg.name}': {error}") from None
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
        specs.append(TensorSpec(arg.name, datatype, shape))
    return tuple(specs)


def open_session(
    path: Path, *, model: str, config: SessionConfig, providers: tuple[str, ...], warn: bool = True
) -> OpenSession:
    """Load ``path`` with the given options and provider preference; blocking (call it in a thread).

    ``warn=False`` logs no provider fallback: for a session of the server's own process opened after
    :func:`read_signature` has reported it once.

    ``config.custom_op_libraries`` name files of the model's folder (``MODEL`` in
    ``MODEL/VERSION/model.onnx``), resolved inside it, links too; one that is missing, leaves the folder or
    is no operator library is a :class:`ModelLoadError` naming the key."""
    import onnxruntime as ort

    preference = _choose_providers(providers, model, warn=warn)
    options = _session_options(config, path.parent.parent)  # the layout: MODEL/VERSION/model.onnx
    try:
        session = ort.InferenceSession(str(path), options, providers=preference)
    except Exception as error:
        raise ModelLoadError(load_failure(error, str(path))) from error
    active = session.get_providers()[0]
    if active != preference[0] and warn:
        logger.warning(
            "model %s: execution provider %s could not be initialised; using %s",
            model,
            _SHORT_NAMES.get(preference[0], preference[0]),
            _SHORT_NAMES.get(active, active),
        )
    return OpenSession(
        session=session,
        inputs=_specs(session.get_inputs(), str(path)),
        outputs=_specs(session.get_outputs(), str(path)),
        provider=_SHORT_NAMES.get(active, active),
    )


def read_signature(path: Path, *, model: str, config: SessionConfig, providers: tuple[str, ...]) -> Signature:
    """Open ``path`` as :func:`open_session` does (same errors, same provider fallback), keep its signature
    and the active provider, and release the session: its weights are freed at once (blocking)."""
    opened = open_session(path, model=model, config=config, providers=providers)
    return Signature(opened.inputs, opened.outputs, opened.provider)
