"""The data plane: the one place both protocol adapters call, with no wire types in sight.

It finds the model version, checks the request against the version's signature (names, datatypes, shapes,
batch size) before anything runs, calls the version's executor, and records statistics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .datatypes import DATATYPES, by_numpy
from .errors import InvalidInput, ModelNotFound, ModelNotReady, ModelportError
from .executor import ExecutionResult
from .inference import InferRequest, InferResponse, Protocol, Tensors, TensorSpec
from .observability.access_log import new_request_id
from .observability.log_settings import LogSettings, LogValue
from .observability.metrics import ServerMetrics
from .observability.recording import RequestRecorder, internal_error, tag_with_request_id
from .observability.statistics import VersionStatistics
from .observability.trace_settings import TraceUpdate
from .observability.tracing import RequestTrace, Tracing
from .repository.model_manager import LoadedVersion, ModelIndexEntry, ModelManager
from .repository.triton_config import PLATFORM, triton_model_config
from .response_cache import answer
from .settings import ServerSettings
from .shared_memory import SharedMemoryUse, SystemSharedMemory

__all__ = ["PLATFORM", "DataPlane", "ModelIndexEntry", "ModelMetadata", "Servable", "ServerMetadata"]

logger = logging.getLogger(__name__)

# What check_servable found: handed back to infer, it spares a second lookup of the same version.
Servable = LoadedVersion

SERVER_NAME = "modelport"
EXTENSIONS = [
    "binary_tensor_data",
    "model_repository",
    "model_configuration",
    "statistics",
    "parameters",
    "schedule_policy",
    "system_shared_memory",
    "trace",
    "logging",
]


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    name: str
    version: str
    extensions: list[str]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


def _server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelport")
    except PackageNotFoundError:
        return "0.0.0"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class DataPlane:
    """Protocol-neutral server operations; errors are the classes of ``errors.py``."""

    def __init__(
        self, *, manager: ModelManager, settings: ServerSettings, metrics: ServerMetrics | None = None
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._recorder = RequestRecorder(metrics if metrics is not None else ServerMetrics())
        self._ready = False
        self._metadata = ServerMetadata(SERVER_NAME, _server_version(), list(EXTENSIONS))
        # The client's registered regions (Triton's system shared-memory extension); closed at shutdown.
        self.system_shared_memory = SystemSharedMemory()
        # The adapters read ``tracing.on`` per request; the server closes it when it stops (app.py).
        self.tracing = Tracing(
            endpoint=settings.trace_endpoint, rate=settings.trace_rate, service_version=self._metadata.version
        )
        self._log_settings = LogSettings(level=settings.log_level, log_format=settings.log_format)

    # ----- health and metadata ---------------------------------------------------------------------------

    def set_ready(self, ready: bool) -> None:
        """Startup finished (True) or shutdown began (False)."""
        self._ready = ready

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Startup loading finished and the server is not shutting down.

        A model that failed to load does not make the server unready (it is listed in the repository index
        with its reason); ``model_ready`` answers per model.
        """
        return self._ready

    def healthy(self) -> bool:
        """Ready, and no loaded version's executor has failed (its workers crash-looped past their restarts):
        TorchServe's ``/ping``, which is Unhealthy while a model has fewer live workers than its minimum."""
        return self._ready and all(loaded.failure is None for loaded in self._manager.serving())

    def server_metadata(self) -> ServerMetadata:
        return self._metadata

    def model_metadata(self, name: str, version: str = "") -> ModelMetadata:
        loaded = self._manager.get(name, version)
        config = loaded.spec.config
        return ModelMetadata(
            name=name,
            versions=[str(v) for v in self._manager.ready_versions(name)],
            platform=PLATFORM,
            inputs=list(config.inputs),
            outputs=list(config.outputs),
        )

    def sole_input(self, name: str, version: str = "") -> tuple[TensorSpec, bool]:
        """The one input of a model version and whether it batches: what a raw binary request (a body that is
        one tensor, no JSON header) fills. :class:`InvalidInput` naming the inputs when there are several."""
        config = self._manager.get(name, version).spec.config
        if len(config.inputs) != 1:
            names = ", ".join(t.name for t in config.inputs)
            raise InvalidInput(
                f"model '{name}' has {len(config.inputs)} inputs ({names}); a raw binary request "
                "(Inference-Header-Content-Length: 0) fits single-input models only: send a JSON header"
            )
        return config.inputs[0], config.max_batch_size > 0

    def check_servable(self, name: str, version: str = "") -> Servable | None:
        """Refuse an inference for a model or version that is unknown or not ready, before its tensors are
        decoded (:class:`ModelNotFound`, :class:`ModelNotReady`): decoding a large body for nothing is the
        cost an unknown name must not buy. Returns the version found, for :meth:`infer`'s ``servable``, or
        None for a model that :meth:`infer` will load on demand (``--load-on-demand``)."""
        try:
            return self._manager.get(name, version)
        except (ModelNotReady, ModelNotFound):
            if self._manager.loads_on_demand(name):
                return None
            raise

    async def servable(self, name: str, version: str = "") -> Servable:
        """:meth:`check_servable`, a ``--load-on-demand`` model loaded first: for an adapter that needs the
        version's signature to decode the request (TorchServe's bodies)."""
        found = self.check_servable(name, version)
        return found or await self._manager.get_on_demand(name, version, deadline=None)

    def model_ready(self, name: str, version: str = "") -> bool:
        try:
            self._manager.get(name, version)
        except ModelportError:
            return False
        return True

    def model_config(self, name: str, version: str = "") -> dict[str, Any]:
        """Triton's ModelConfig as JSON (what ``/config`` and gRPC ``ModelConfig`` return)."""
        return triton_model_config(self._manager.get(name, version).spec)

    # ----- inference ------------------------------------------------------------------------------------

    async def infer(
        self, request: InferRequest, *, servable: Servable | None = None, trace: RequestTrace | None = None
    ) -> InferResponse:
        """Validate ``request`` against the model's signature, run it, and record it once (statistics,
        metrics, access log). ``request.id`` is the client's id, else a generated one; the response echoes
        it and every error message ends with it.

        ``servable``: what :meth:`check_servable` returned for this request when nothing was awaited since
        (the adapter decoded on the loop), so the version is not looked up twice; None looks it up (a
        version may have been replaced while a large request was decoded in a thread). ``trace``: the
        request's trace (:attr:`tracing`), told where the time went."""
        request.id = request.id or new_request_id()
        started = time.monotonic_ns()
        statistics: VersionStatistics | None = None
        rows = 0
        result: ExecutionResult | None = None
        failure: Exception | None = None
        shared = SharedMemoryUse(self.system_shared_memory, request)
        try:
            deadline = self._deadline(request)  # also bounds a load on demand
            if servable is None or servable.failure is not None:
                loaded = await self._manager.get_on_demand(
                    request.model_name, request.model_version, deadline=deadline
                )
            else:
                loaded = servable
            statistics = loaded.statistics
            shared.attach()  # inputs in shared memory become views of it; outputs' regions are checked
            rows = self._check_inputs(loaded, request.inputs)
            output_names = self._output_names(loaded, request.requested_outputs)
            self._check_output_parameters(request)
            loaded.enter()
            try:
                with self._recorder.in_flight(statistics.name, statistics.version):
                    result = await answer(
                        loaded.cache,
                        request.inputs,
                        output_names,
                        lambda: loaded.executor.infer(
                            loaded.spec.config.to_graph_shapes(request.inputs),
                            output_names=output_names,
                            deadline=deadline,
                        ),
                    )
            finally:
                loaded.exit()
            outputs = loaded.spec.config.to_client_shapes(
                {name: result.outputs[name] for name in output_names}
            )
            in_shared_memory = shared.place(outputs)
        except Exception as error:
            failure = error
        finally:
            shared.release()
        self._recorder.finish(
            request_id=request.id,
            model_name=request.model_name,
            protocol=request.protocol,
            started_ns=started,
            statistics=statistics,
            model_known=statistics is not None or not isinstance(failure, ModelNotFound),
            rows=rows,
            result=result,
            error=failure,
        )
        if trace is not None and result is not None:
            trace.ran(str(loaded.spec.version), result)
        if failure is not None:
            # Raised straight from the call, never held in a local: a local exception whose traceback holds
            # this frame (and the request's tensors) is a cycle only the cyclic GC frees, late, and a large
            # request's memory would stay with it.
            raise _client_error(failure, request) from None
        assert result is not None  # no failure: the executor answered
        return InferResponse(
            model_name=request.model_name,
            model_version=str(loaded.spec.version),
            outputs=outputs,
            id=request.id,
            in_shared_memory=in_shared_memory,
        )

    def reject(
        self,
        error: ModelportError,
        *,
        model_name: str,
        model_version: str,
        request_id: str,
        protocol: Protocol,
    ) -> ModelportError:
        """Record an inference request its adapter could not decode (as :meth:`infer` records a failure) and
        return ``error`` tagged with the request id (``request_id``, else a generated one) for the client."""
        request_id = request_id or new_request_id()
        statistics: VersionStatistics | None = None
        known = True
        try:
            statistics = self._manager.get(model_name, model_version).statistics
        except ModelNotFound:
            known = False
        except ModelportError:
            pass
        self._recorder.finish(
            request_id=request_id,
            model_name=model_name,
            protocol=protocol,
            started_ns=time.monotonic_ns(),
            statistics=statistics,
            model_known=known,
            error=error,
        )
        return tag_with_request_id(error, request_id)

    @staticmethod
    def _check_inputs(loaded: LoadedVersion, inputs: Tensors) -> int:
        """Refuse anything that does not match the signature; returns the batch size (1 if not batching)."""
        config = loaded.spec.config
        model = config.name
        batching = config.max_batch_size > 0
        rows = -1
        for spec in config.inputs:
            array = inputs.get(spec.name)
            if array is None:
                expected = ", ".join(t.name for t in config.inputs)
                raise InvalidInput(f"model '{model}': input '{spec.name}' is missing (inputs: {expected})")
            # The dtype the datatype decodes to is the common case: the name lookup only for the others.
            expected_dtype = _NUMPY.get(spec.datatype)
            matches = expected_dtype is not None and array.dtype == expected_dtype
            datatype = spec.datatype if matches else _datatype_of(array)
            if datatype != spec.datatype:
                raise InvalidInput(
                    f"model '{model}': input '{spec.name}' has datatype {datatype}, expected {spec.datatype}"
                )
            shape = array.shape
            if len(shape) != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, shape, strict=False)
            ):
                batch_note = " (the first dimension is the batch)" if batching else ""
                raise InvalidInput(
                    f"model '{model}': input '{spec.name}' has shape {_shape_text(shape)}, expected "
                    f"{_shape_text(spec.shape)}{batch_note}; -1 is any size"
                )
            if batching:
                if shape[0] > config.max_batch_size:
                    raise InvalidInput(
                        f"model '{model}': input '{spec.name}' has batch size {shape[0]}, more than the "
                        f"model's max_batch_size {config.max_batch_size}; split the request"
                    )
                if rows not in (-1, shape[0]):
                    raise InvalidInput(
                        f"model '{model}': input '{spec.name}' has batch size {shape[0]} but other inputs "
                        f"have {rows}; every input must have the same first dimension"
                    )
                rows = shape[0]
        if len(inputs) != len(config.inputs):
            known = {t.name for t in config.inputs}
            extra = ", ".join(sorted(n for n in inputs if n not in known))
            expected = ", ".join(t.name for t in config.inputs)
            raise InvalidInput(f"model '{model}' has no input(s) {extra} (inputs: {expected})")
        return max(rows, 1) if batching else 1

    @staticmethod
    def _output_names(loaded: LoadedVersion, requested: list[str] | None) -> list[str]:
        outputs = loaded.spec.config.outputs
        if not requested:  # None or an empty list: every output, as Triton answers a request naming none
            return [t.name for t in outputs]
        known = {t.name for t in outputs}
        for name in requested:
            if name not in known:
                expected = ", ".join(t.name for t in outputs)
                raise InvalidInput(f"model '{loaded.spec.name}' has no output '{name}' (outputs: {expected})")
        return requested

    @staticmethod
    def _check_output_parameters(request: InferRequest) -> None:
        """Refuse per-output parameters of extensions this server lacks (both protocols, one place)."""
        for name, parameters in request.output_parameters.items():
            if "classification" in parameters:
                raise InvalidInput(f"output '{name}': the classification extension is not supported")

    @staticmethod
    def _deadline(request: InferRequest) -> float | None:
        timeout = request.parameters.get("timeout")
        if timeout is None:
            return None
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise InvalidInput(f"parameter 'timeout': {timeout!r} is not a number of microseconds >= 0")
        return time.monotonic() + timeout / 1e6 if timeout else None

    # ----- trace and log settings ------------------------------------------------------------------------

    def trace_settings(self, model_name: str = "", update: TraceUpdate | None = None) -> dict[str, Any]:
        """Triton's trace settings of ``model_name`` (``""``: the global ones), after ``update`` if given
        (see :mod:`.observability.trace_settings`); a model that is not in the repository is refused."""
        if model_name and all(row.name != model_name for row in self._manager.index()):
            raise ModelNotFound(f"Request for unknown model: '{model_name}' is not found")
        if update is None:
            return self.tracing.settings.get(model_name)
        return self.tracing.update(model_name, update)

    def log_settings(self, update: dict[str, LogValue] | None = None) -> dict[str, LogValue]:
        """Triton's log settings, after ``update`` if given (see :mod:`.observability.log_settings`)."""
        return self._log_settings.get() if update is None else self._log_settings.update(update)

    # ----- statistics and repository ---------------------------------------------------------------------

    def model_statistics(self, name: str = "", version: str = "") -> list[dict[str, Any]]:
        return self._manager.statistics(name, version)

    def repository_index(self, *, ready_only: bool = False) -> list[ModelIndexEntry]:
        rows = self._manager.index()
        return [r for r in rows if r.state == "READY"] if ready_only else rows


def _client_error(failure: Exception, request: InferRequest) -> ModelportError:
    """What the client is told of ``failure``, tagged with the request id (an unexpected error is logged with
    its traceback first); ``failure``'s traceback is dropped, so it holds no frame of the request."""
    if isinstance(failure, ModelportError):
        tagged = tag_with_request_id(failure, request.id)
    else:
        what = f"inference request to model '{request.model_name}'"
        tagged = internal_error(logger, what, failure, request_id=request.id)
    failure.__traceback__ = None
    return tagged


_NUMPY = {datatype.name: datatype.numpy for datatype in DATATYPES}


def _datatype_of(array: np.ndarray[Any, Any]) -> str:
    try:
        return by_numpy(array.dtype).name
    except ValueError:
        return str(array.dtype)
