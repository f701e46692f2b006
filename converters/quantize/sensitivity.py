"""Which layers' quantization costs the accuracy, and the fewest to keep in FP32 (``--explain``, ``--auto-
exclude``), as TFLite's quantization debugger tells its users.

A layer's cost is measured by quantizing that layer alone (ONNX Runtime's ``nodes_to_quantize``) and judging
the result with the accuracy gate on the validation samples: the drop it causes by itself, and its max abs
error against FP32. Only the layers that carry weights are candidates (MatMul, Gemm, Conv, LSTM, embeddings,
...): the activation-only nodes follow them. ``--auto-exclude`` then keeps the costliest layers in FP32
(``nodes_to_exclude``), one more at a time in order of cost, until the gate passes: the fewest that this
order finds, each try a full quantization and gate run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx

from .gate import AccuracyReport

__all__ = [
    "Explanation",
    "LayerCost",
    "candidate_layers",
    "explain",
    "fewest_fp32_layers",
    "layer_costs",
    "name_every_node",
]

# Layers that hold weights: where 8 bits lose the precision. The registry of the mode decides which of these
# ONNX Runtime quantizes at all.
_WEIGHTED = frozenset(
    {
        "MatMul",
        "Gemm",
        "Conv",
        "ConvTranspose",
        "LSTM",
        "GRU",
        "Attention",
        "Gather",
        "EmbedLayerNormalization",
    }
)

# Quantizes the pre-processed model into the path given, with (nodes_to_quantize, nodes_to_exclude), and
# returns the gate's verdict on the result.
Trial = Callable[[Path, Sequence[str] | None, Sequence[str]], AccuracyReport]


@dataclass(frozen=True, slots=True)
class LayerCost:
    """What quantizing one layer alone costs: the gate's drop and the worst output's max abs error."""

    node: str
    op_type: str
    drop: float
    max_abs_error: float


def name_every_node(model: onnx.ModelProto) -> int:
    """Name every unnamed node uniquely, in place (ONNX Runtime selects nodes by name); returns how many."""
    taken = {node.name for node in model.graph.node if node.name}
    named = 0
    for index, node in enumerate(model.graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)
            named += 1
    return named


def candidate_layers(model: onnx.ModelProto, mode: Literal["dynamic", "static"]) -> list[tuple[str, str]]:
    """``(name, op_type)`` of the weighted layers ONNX Runtime quantizes in ``mode``, in graph order."""
    from onnxruntime.quantization import registry

    quantized = registry.IntegerOpsRegistry if mode == "dynamic" else registry.QDQRegistry
    return [
        (n.name, n.op_type) for n in model.graph.node if n.op_type in _WEIGHTED and n.op_type in quantized
    ]


def layer_costs(
    layers: Sequence[tuple[str, str]], work: Path, trial: Trial, progress: Callable[[str], None]
) -> list[LayerCost]:
    """Each layer quantized alone, costliest first."""
    costs = []
    for index, (name, op_type) in enumerate(layers, start=1):
        progress(f"explain: quantizing layer {index}/{len(layers)} alone ({op_type} {name})")
        verdict = trial(work / f"alone-{index}.onnx", [name], ())
        costs.append(LayerCost(name, op_type, verdict.drop, verdict.worst_abs_error))
    return sorted(costs, key=lambda cost: (cost.drop, cost.max_abs_error), reverse=True)


def fewest_fp32_layers(
    costs: Sequence[LayerCost], work: Path, trial: Trial, progress: Callable[[str], None]
) -> tuple[list[str], Path, AccuracyReport] | None:
    """The first ``k`` costliest layers kept in FP32 that pass the gate, with the model and its verdict;
    ``None`` when even keeping every candidate in FP32 fails."""
    for count in range(1, len(costs) + 1):
        excluded = [cost.node for cost in costs[:count]]
        progress(f"auto-exclude: keeping {count} layer(s) in FP32 ({', '.join(excluded)})")
        path = work / f"exclude-{count}.onnx"
        verdict = trial(path, None, excluded)
        if verdict.passed:
            return excluded, path, verdict
    return None


@dataclass(slots=True)
class Explanation:
    """What ``--explain`` / ``--auto-exclude`` found: the layers' costs (costliest first; empty without
    ``--explain`` and when the gate passed), the layers kept in FP32 and, then, the model that passed with
    them (``model``, its verdict ``accuracy``) and the fully quantized one it replaces (``full_model``)."""

    costs: list[LayerCost]
    fp32_layers: list[str]
    model: Path | None = None
    accuracy: AccuracyReport | None = None
    full_model: Path | None = None


def explain(
    model: onnx.ModelProto,
    mode: Literal["dynamic", "static"],
    work: Path,
    trial: Trial,
    *,
    want_costs: bool,
    auto_exclude: bool,
    full: tuple[Path, AccuracyReport],
    progress: Callable[[str], None],
) -> Explanation:
    """Measure the layers' costs when asked (or needed to exclude), and exclude the fewest when the fully
    quantized model ``full`` fails the gate and ``auto_exclude`` is set."""
    full_model, verdict = full
    needed = auto_exclude and not verdict.passed
    if not (want_costs or needed):
        return Explanation([], [])
    work.mkdir(parents=True, exist_ok=True)
    costs = layer_costs(candidate_layers(model, mode), work, trial, progress)
    if not needed:
        return Explanation(costs, [])
    found = fewest_fp32_layers(costs, work, trial, progress)
    if found is None:
        return Explanation(costs, [])
    excluded, path, accuracy = found
    kept = work / "full-int8.onnx"
    full_model.replace(kept)
    return Explanation(costs, excluded, path, accuracy, kept)
