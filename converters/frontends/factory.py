"""``package.module:factory`` sources: import the callable, call it, load ``--weights``, and convert the
result with the converter of whichever framework it belongs to (torch ``nn.Module`` or Keras model)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..custom_ops import CustomOp
from ..dotted_names import resolve_callable
from ..errors import CorruptSource, ExportFailed, InvalidOption, SourceNotFound
from ..exported import ExportedModel
from ..options import FactoryOptions, Framework

__all__ = ["export_factory", "factory_file"]


def factory_file(spec: str) -> Path | None:
    """The file that defines the factory's module (for the report's checksum), if it has one."""
    module = sys.modules.get(spec.split(":", 1)[0])
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


def _framework_of(model: Any) -> Framework | None:
    modules = [cls.__module__ for cls in type(model).__mro__]
    if any(name.startswith("torch.nn") for name in modules):
        return "torch"
    if any(name.startswith(("keras", "tf_keras")) for name in modules):
        return "keras"
    return None


def _load_torch_weights(model: Any, weights: Path, spec: str) -> None:
    import torch

    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CorruptSource(
            f"{weights}: not a readable state dict ({type(error).__name__}); save it with "
            "torch.save(model.state_dict(), PATH)"
        ) from error
    if not isinstance(state, dict):
        raise CorruptSource(f"{weights}: holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise InvalidOption(
            f"{weights}: does not fit the model from {spec} ({first}); check the factory"
        ) from error


def _load_keras_weights(model: Any, weights: Path) -> None:
    try:
        model.load_weights(str(weights))
    except Exception as error:
        raise InvalidOption(
            f"{weights}: cannot be loaded into the model ({type(error).__name__}: {str(error)[:200]})"
        ) from error


def export_factory(
    spec: str, options: FactoryOptions, *, custom_ops: tuple[CustomOp, ...] = ()
) -> ExportedModel:
    """Build the model with the factory ``spec`` (``package.module:callable``) and convert it; ``custom_ops``
    naming torch operators are the exporter's translations for them (a torch model's)."""
    factory = resolve_callable(spec)
    if options.framework == "torch":
        import torch  # noqa: F401  # the factory may expect torch imported; it fails clearly here if missing
    elif options.framework in ("keras", "tensorflow"):
        from .tensorflow_env import import_tensorflow

        import_tensorflow()
    try:
        model = factory()
    except Exception as error:
        raise ExportFailed(f"{spec}: calling it failed ({type(error).__name__}: {error})") from error
    framework = _framework_of(model)
    if framework is None:
        raise InvalidOption(
            f"{spec}: returned a {type(model).__module__}.{type(model).__name__}; it must return a "
            "torch.nn.Module or a Keras model"
        )
    if options.framework is not None and options.framework not in (framework, "tensorflow"):
        raise InvalidOption(f"{spec}: returned a {framework} model, not {options.framework}; fix --framework")
    if options.weights is not None and not options.weights.is_file():
        raise SourceNotFound(f"{options.weights}: weights file not found; check --weights")
    if framework == "torch":
        from .torch_export import export_module

        if options.weights is not None:
            _load_torch_weights(model, options.weights, spec)
        return export_module(model, options.inputs, opset=options.opset, source=spec, custom_ops=custom_ops)
    from .keras_export import export_keras_model

    torch_ops = [op.name for op in custom_ops if op.is_torch_operator]
    if torch_ops:
        raise InvalidOption(
            f"{spec}: returned a Keras model; --custom-op {torch_ops[0]} names a torch operator"
        )
    if options.weights is not None:
        _load_keras_weights(model, options.weights)
    return export_keras_model(model, inputs=options.inputs, opset=options.opset, source=spec)
