"""Typed options: one frozen dataclass per source kind, plus the verification settings shared by all.

The options object's type selects the converter; :func:`modelport.converters.convert` infers a default one
from the source path when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .tensor_specs import TensorSpec

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "FactoryOptions",
    "Framework",
    "KerasOptions",
    "SavedModelOptions",
    "SourceOptions",
    "TorchExportOptions",
    "TorchScriptOptions",
    "VerifyOptions",
]

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3

Framework = Literal["torch", "keras", "tensorflow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyOptions:
    """How the ONNX model is checked against the framework.

    ``samples``: an ``.npz`` whose arrays are keyed by input name (rows on the first axis); without it inputs
    are generated from the signature (normal floats; integer inputs get ids inside the smallest embedding).
    ``batch_sizes`` are used when the batch axis is dynamic; a fixed batch is tested at its own size.
    """

    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    samples: Path | None = None
    batch_sizes: tuple[int, ...] = (1, 7)
    seed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchExportOptions:
    """A ``torch.export`` program saved with ``torch.export.save`` (``.pt2``); it carries its signature, which
    ``inputs`` (optional) are checked against: they may rename inputs and fix dynamic axes."""

    inputs: tuple[TensorSpec, ...] = ()
    opset: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchScriptOptions:
    """A TorchScript module (``.pt``). TorchScript keeps no shapes: ``inputs`` are required, in ``forward()``
    order, named as ``forward()``'s arguments."""

    inputs: tuple[TensorSpec, ...] = ()
    opset: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FactoryOptions:
    """A ``package.module:callable`` returning a ``torch.nn.Module`` or a Keras model.

    ``weights``: a state dict (``torch.save(model.state_dict())``) or Keras weights file loaded into the
    result. ``inputs`` are required for a torch module and for a Keras model that was never built.
    ``framework`` only checks what the callable returns.
    """

    weights: Path | None = None
    inputs: tuple[TensorSpec, ...] = ()
    framework: Framework | None = None
    opset: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KerasOptions:
    """A Keras model file (``.keras`` or legacy ``.h5``). ``inputs`` only for a model saved unbuilt."""

    inputs: tuple[TensorSpec, ...] = ()
    opset: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedModelOptions:
    """A TensorFlow SavedModel directory; ``signature`` names the signature to convert. ``inputs`` (optional)
    are checked against the signature's: they may rename inputs and fix dynamic axes."""

    inputs: tuple[TensorSpec, ...] = ()
    signature: str = "serving_default"
    tag: str = "serve"
    opset: int | None = None


SourceOptions = TorchExportOptions | TorchScriptOptions | FactoryOptions | KerasOptions | SavedModelOptions
