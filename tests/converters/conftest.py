"""Shared pieces of the converter tests: the parity tables the framework conversions fill, printed at the end
of the run and written under ``build/``: the 21-cell seed table (``conversion-parity.md``) and the
real-architecture table (``conversion-architectures.md``: errors, conversion time, ONNX size, ops used)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelport.converters import ConversionReport

FRAMEWORKS = ("PyTorch (.pt2)", "Keras (.keras)", "TensorFlow (SavedModel)")
ARCHITECTURES = ("mlp", "cnn", "rnn", "lstm", "gru", "bilstm", "autoencoder")

# (framework, architecture) -> max abs error over all outputs and batch sizes.
_PARITY: dict[tuple[str, str], float] = {}


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One real-architecture conversion: its errors over batch sizes 1 and 7, time, size and ONNX ops."""

    framework: str
    max_abs_error: float
    max_rel_error: float
    seconds: float
    onnx_bytes: int
    ops: tuple[str, ...]


# case -> its row
_CASES: dict[str, CaseRow] = {}


def _op_types(model_path: Path) -> tuple[str, ...]:
    """The distinct op types in the ONNX file, in subgraphs (Loop, Scan, If) and local functions too."""
    import onnx

    model = onnx.load(str(model_path))
    found: set[str] = set()

    def visit(nodes: Iterator[onnx.NodeProto] | list[onnx.NodeProto]) -> None:
        for node in nodes:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}")
            for attribute in node.attribute:
                subgraphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs
                for graph in subgraphs:
                    visit(list(graph.node))

    visit(list(model.graph.node))
    for function in model.functions:
        visit(list(function.node))
    local = {function.name for function in model.functions}
    return tuple(sorted(found - local))


class ParityTable:
    """Where each framework test records its cell (seed table) or its row (real-architecture table)."""

    def record(self, framework: str, architecture: str, max_abs_error: float) -> None:
        _PARITY[(framework, architecture)] = max_abs_error

    def record_case(self, case: str, framework: str, report: ConversionReport) -> None:
        _CASES[case] = CaseRow(
            framework=framework,
            max_abs_error=report.max_abs_error,
            max_rel_error=report.max_rel_error,
            seconds=report.seconds["total"],
            onnx_bytes=report.onnx_bytes,
            ops=_op_types(report.model_path),
        )


@pytest.fixture(scope="session")
def parity_table() -> Iterator[ParityTable]:
    yield ParityTable()


def render_parity() -> str:
    """The table as Markdown: framework rows x architecture columns, max abs error (or '-' if not run)."""
    lines = ["| framework | " + " | ".join(ARCHITECTURES) + " |", "|---" * (len(ARCHITECTURES) + 1) + "|"]
    for framework in FRAMEWORKS:
        cells = [
            f"{_PARITY[(framework, arch)]:.2e}" if (framework, arch) in _PARITY else "-"
            for arch in ARCHITECTURES
        ]
        lines.append(f"| {framework} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_cases() -> str:
    """The real-architecture table as Markdown, one row per case in the order they ran."""
    lines = [
        "| case | framework | max abs error | max rel error | conversion s | ONNX KiB | ops used |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, row in _CASES.items():
        lines.append(
            f"| {case} | {row.framework} | {row.max_abs_error:.2e} | {row.max_rel_error:.2e} | "
            f"{row.seconds:.1f} | {row.onnx_bytes / 1024:.0f} | {', '.join(row.ops)} |"
        )
    return "\n".join(lines) + "\n"


# file under build/, its heading, whether it has rows, how it renders
_TABLES: tuple[tuple[str, str, Callable[[], bool], Callable[[], str]], ...] = (
    (
        "conversion-parity.md",
        "Max abs error, framework vs ONNX Runtime, batch sizes 1 and 7",
        lambda: bool(_PARITY),
        render_parity,
    ),
    (
        "conversion-architectures.md",
        "Real architectures: framework vs ONNX Runtime at batch sizes 1 and 7, conversion time, size, ops",
        lambda: bool(_CASES),
        render_cases,
    ),
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for file_name, heading, filled, render in _TABLES:
        if not filled():
            continue
        table = render()
        target = Path(config.rootpath) / "build" / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(heading + "\n\n" + table)
        terminalreporter.write_sep("-", f"{heading} (written to {target})")
        terminalreporter.write(table)
