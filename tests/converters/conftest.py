"""Shared pieces of the converter tests: the parity table the 21 framework conversions fill, printed at the
end of the run and written to ``build/conversion-parity.md``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

FRAMEWORKS = ("PyTorch (.pt2)", "Keras (.keras)", "TensorFlow (SavedModel)")
ARCHITECTURES = ("mlp", "cnn", "rnn", "lstm", "gru", "bilstm", "autoencoder")

# (framework, architecture) -> max abs error over all outputs and batch sizes.
_PARITY: dict[tuple[str, str], float] = {}


class ParityTable:
    """Where each framework test records its cell."""

    def record(self, framework: str, architecture: str, max_abs_error: float) -> None:
        _PARITY[(framework, architecture)] = max_abs_error


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _PARITY:
        return
    table = render_parity()
    target = Path(config.rootpath) / "build" / "conversion-parity.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("Max abs error, framework vs ONNX Runtime, batch sizes 1 and 7\n\n" + table)
    terminalreporter.write_sep("-", f"conversion parity (max abs error; written to {target})")
    terminalreporter.write(table)
