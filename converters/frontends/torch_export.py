"""PyTorch sources -> ONNX: ``torch.export`` programs (``.pt2``), ``nn.Module`` objects and TorchScript.

Programs and modules go through ``torch.export`` and the dynamo ONNX exporter (``external_data=False``: one
self-contained file). TorchScript cannot be traced by ``torch.export``; it goes through the TorchScript
exporter, the one that reads ScriptModules. torch is imported only here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnx

from ..custom_ops import CustomOp, torch_translations
from ..errors import CorruptSource, ExportFailed, InvalidOption, MissingInputSpec
from ..exported import Arrays, ExportedModel
from ..options import TorchExportOptions, TorchScriptOptions
from ..samples import generate
from ..tensor_specs import DYNAMIC, TensorSpec
from .torch_errors import export_error, translation_error

if TYPE_CHECKING:
    import torch

__all__ = ["export_module", "export_program", "export_torchscript"]

# A batch of 2 when tracing: torch.export specialises dimensions of size 0 and 1.
_EXAMPLE_BATCH = 2
_TORCHSCRIPT_OPSET = 17


def _flatten(result: Any) -> list[tuple[str | None, torch.Tensor]]:
    """The tensors of a forward() result in pytree order, with their dict keys where there are any."""
    import torch

    if isinstance(result, torch.Tensor):
        return [(None, result)]
    if isinstance(result, Mapping):
        return [(str(key) if sub is None else sub, t) for key, v in result.items() for sub, t in _flatten(v)]
    if isinstance(result, (tuple, list)):
        return [pair for item in result for pair in _flatten(item)]
    raise ExportFailed(
        f"forward() returned {type(result).__name__}; return tensors, tuples or dicts of tensors"
    )


def _output_names(result: Any) -> list[str]:
    keys = [key for key, _ in _flatten(result)]
    if len(keys) == 1 and keys[0] is None:
        return ["output"]
    if all(key is not None for key in keys) and len(set(keys)) == len(keys):
        return [str(key) for key in keys]
    return [f"output_{index}" for index in range(len(keys))]


def _runner(call: Any, input_names: Sequence[str], output_names: Sequence[str]) -> Any:
    import torch

    def run(inputs: Mapping[str, npt.NDArray[np.generic]]) -> Arrays:
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in input_names]
        with torch.no_grad():
            flat = _flatten(call(*tensors))
        return {name: t.detach().cpu().numpy() for name, (_, t) in zip(output_names, flat, strict=True)}

    return run


def _tensors(specs: Sequence[TensorSpec]) -> tuple[torch.Tensor, ...]:
    import torch

    arrays = generate(specs, batch=_EXAMPLE_BATCH, rng=np.random.default_rng(0), int_high=1)
    return tuple(torch.from_numpy(arrays[spec.name]) for spec in specs)


def _program_to_onnx(
    program: Any,
    *,
    output_names: list[str],
    opset: int | None,
    source: str,
    custom_ops: tuple[CustomOp, ...],
) -> onnx.ModelProto:
    import torch

    kwargs: dict[str, Any] = {"output_names": output_names, "external_data": False, "dynamo": True}
    translations = torch_translations(custom_ops)
    if translations:
        kwargs["custom_translation_table"] = translations
    if opset is not None:
        kwargs["opset_version"] = opset
    try:
        onnx_program = torch.onnx.export(program, (), **kwargs)
    except Exception as error:
        raise translation_error(error, program, source) from error
    if onnx_program is None:
        raise ExportFailed(f"{source}: the ONNX exporter returned no model")
    model: onnx.ModelProto = onnx_program.model_proto
    return model


def _exported(
    model: onnx.ModelProto, run: Any, converter: str, *, own_signature: bool = False
) -> ExportedModel:
    import torch

    return ExportedModel(
        carries_signature=own_signature,
        model=model,
        run=run,
        framework="torch",
        framework_version=torch.__version__,
        converter=converter,
        converter_version=torch.__version__,
    )


def export_program(
    path: Path, options: TorchExportOptions, *, custom_ops: tuple[CustomOp, ...] = ()
) -> ExportedModel:
    """Convert a program saved with ``torch.export.save``; its inputs and dynamic dims are its own."""
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as error:
        raise CorruptSource(
            f"{path}: not a readable torch.export program ({type(error).__name__}: {error}); "
            "save it with torch.export.save(torch.export.export(model, args), PATH)"
        ) from error
    input_names = list(program.graph_signature.user_inputs)
    out_spec = program.module_call_graph[0].signature.out_spec
    count = len(program.graph_signature.user_outputs)
    if out_spec is not None and out_spec.type is dict and out_spec.num_leaves == count:
        output_names = [str(key) for key in out_spec.context]
    else:
        output_names = ["output"] if count == 1 else [f"output_{i}" for i in range(count)]
    model = _program_to_onnx(
        program, output_names=output_names, opset=options.opset, source=str(path), custom_ops=custom_ops
    )
    run = _runner(program.module(), input_names, output_names)
    return _exported(model, run, "torch.onnx (dynamo)", own_signature=True)


def forward_parameters(module: Any) -> list[str]:
    """The names of ``forward()``'s positional parameters."""
    parameters = inspect.signature(module.forward).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.kind in kinds]


def _ordered_inputs(inputs: Sequence[TensorSpec], arguments: Sequence[str], source: str) -> list[TensorSpec]:
    """``inputs`` in ``forward()`` order; refuses names that are not ``forward()``'s arguments."""
    if not inputs:
        example = ", ".join(f"--input {name}:float32:-1,..." for name in arguments)
        raise MissingInputSpec(
            f"{source}: a torch model keeps no input shapes; give one --input NAME:DTYPE:DIMS per forward() "
            f"argument ({example})"
        )
    by_name = {spec.name: spec for spec in inputs}
    unknown = [name for name in by_name if name not in arguments]
    missing = [name for name in arguments if name not in by_name]
    if unknown or missing:
        raise InvalidOption(
            f"{source}: --input names must be forward()'s arguments ({', '.join(arguments)}); "
            f"unknown: {', '.join(unknown) or 'none'}; missing: {', '.join(missing) or 'none'}"
        )
    return [by_name[name] for name in arguments]


def export_module(
    module: torch.nn.Module,
    inputs: Sequence[TensorSpec],
    *,
    opset: int | None,
    source: str,
    custom_ops: tuple[CustomOp, ...] = (),
) -> ExportedModel:
    """Convert an ``nn.Module`` traced with ``torch.export`` at the given input specs (``-1`` = dynamic)."""
    import torch

    module.eval()
    specs = _ordered_inputs(inputs, forward_parameters(module), source)
    args = _tensors(specs)
    dynamic_shapes = tuple(
        {axis: torch.export.Dim.AUTO for axis, dim in enumerate(spec.dims) if dim == DYNAMIC} or None
        for spec in specs
    )
    try:
        with torch.no_grad():
            output_names = _output_names(module(*args))
        program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as error:
        raise export_error(error, source) from error
    model = _program_to_onnx(
        program, output_names=output_names, opset=opset, source=source, custom_ops=custom_ops
    )
    input_names = [spec.name for spec in specs]
    return _exported(model, _runner(module, input_names, output_names), "torch.onnx (dynamo)")


def export_torchscript(path: Path, options: TorchScriptOptions) -> ExportedModel:
    """Convert a TorchScript module; ``options.inputs`` name ``forward()``'s arguments and their shapes."""
    import tempfile

    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]  # unannotated in torch
    except Exception as error:
        raise CorruptSource(
            f"{path}: not a readable TorchScript module ({type(error).__name__}); save it with "
            "torch.jit.save(torch.jit.script(model), PATH), or for a state dict use package.module:factory "
            "--weights PATH"
        ) from error
    module.eval()
    arguments = [argument.name for argument in module.forward.schema.arguments[1:]]
    specs = _ordered_inputs(options.inputs, arguments, str(path))
    args = _tensors(specs)
    input_names = [spec.name for spec in specs]
    try:
        with torch.no_grad():
            output_names = _output_names(module(*args))
    except Exception as error:
        raise InvalidOption(
            f"{path}: forward() failed on inputs shaped by --input ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); check the --input dtypes and dims"
        ) from error
    dynamic_axes: dict[str, dict[int, str]] = {}
    for spec in specs:
        axes = {
            axis: "batch" if axis == 0 else f"{spec.name}_{axis}" for axis, d in enumerate(spec.dims) if d < 0
        }
        if axes:
            dynamic_axes[spec.name] = axes
    if any(spec.batch_dynamic for spec in specs):
        dynamic_axes.update({name: {0: "batch"} for name in output_names})
    with tempfile.TemporaryDirectory(prefix="modelport-torchscript-") as folder:
        target = Path(folder) / "model.onnx"
        _export_torchscript(module, args, target, input_names, output_names, dynamic_axes, options, str(path))
        model = onnx.load(str(target))
    return _exported(model, _runner(module, input_names, output_names), "torch.onnx (torchscript)")


def _export_torchscript(  # noqa: PLR0917  # private helper; every argument is required
    module: Any,
    args: tuple[torch.Tensor, ...],
    target: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    options: TorchScriptOptions,
    source: str,
) -> None:
    import torch

    try:
        torch.onnx.export(
            module,
            args,
            str(target),
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=options.opset or _TORCHSCRIPT_OPSET,
        )
    except Exception as error:
        raise translation_error(error, None, source, scripted=module) from error
