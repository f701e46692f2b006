"""ONNX -> ORT format for ONNX Runtime Mobile, with the operator list for a minimal (reduced-operator) build.

Uses onnxruntime's own converter (``onnxruntime.tools.convert_onnx_models_to_ort``). ``fixed`` style bakes
the graph optimizations into ``model.ort``; ``runtime`` style (for NNAPI / CoreML) saves some of them to be
replayed at load time and is written as ``model.with_runtime_opt.ort``: such a file must be loaded with the
session config entry ``session.enable_saved_runtime_optimizations=1`` (:func:`ort_session_config` gives it),
otherwise the saved optimizations are silently skipped.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import QuantizeError

__all__ = ["OptimizationStyle", "OrtExport", "convert_to_ort", "ort_file_names", "ort_session_config"]

OptimizationStyle = Literal["fixed", "runtime"]
_RUNTIME_OPT_SUFFIX = ".with_runtime_opt.ort"
_REPLAY_ENTRY = "session.enable_saved_runtime_optimizations"


@dataclass(frozen=True, slots=True)
class OrtExport:
    """The files written: the ``.ort`` model and the ``required_operators`` config of a minimal build."""

    ort_path: Path
    operators_config: Path
    style: OptimizationStyle

    @property
    def session_config(self) -> dict[str, str]:
        return ort_session_config(self.ort_path)


def ort_session_config(ort_path: Path) -> dict[str, str]:
    """Session config entries an ``.ort`` file needs to load as intended (empty for ``fixed`` style)."""
    return {_REPLAY_ENTRY: "1"} if ort_path.name.endswith(_RUNTIME_OPT_SUFFIX) else {}


def ort_file_names(style: OptimizationStyle) -> tuple[str, str]:
    """The names :func:`convert_to_ort` writes for ``style``: the ``.ort`` model and its operators config."""
    if style == "runtime":
        return f"model{_RUNTIME_OPT_SUFFIX}", "required_operators.with_runtime_opt.config"
    return "model.ort", "required_operators.config"


def convert_to_ort(
    onnx_path: Path,
    output_dir: Path,
    *,
    style: OptimizationStyle = "fixed",
    target_platform: Literal["amd64", "arm"] | None = None,
) -> OrtExport:
    """Convert ``onnx_path`` into ``output_dir`` (created if needed) as ``model.ort`` (``fixed``) or
    ``model.with_runtime_opt.ort`` (``runtime``) plus ``required_operators[.with_runtime_opt].config``.

    ``target_platform`` ``arm`` lets ONNX Runtime keep int8 QDQ fusions meant for ARM; ``amd64`` allows the
    x86-only NCHWc layout. The default produces a model that runs on both.
    """
    from onnxruntime.tools import convert_onnx_models_to_ort as converter

    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modelport-ort-") as scratch:
        # The tool converts every .onnx under a folder and names the config after the folder's content; give
        # it a folder holding exactly one model.onnx so the names come out as model.ort / required_operators.
        source_dir = Path(scratch) / "in"
        source_dir.mkdir()
        shutil.copyfile(onnx_path, source_dir / "model.onnx")
        out_dir = Path(scratch) / "out"
        # The tool prints its progress and logs each config it writes at INFO level through its own logger.
        chatter = io.StringIO()
        tool_logger = logging.getLogger("ort_format_model.utils")
        level = tool_logger.level
        tool_logger.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(chatter):
                converter.convert_onnx_models_to_ort(
                    source_dir,
                    output_dir=out_dir,
                    optimization_styles=[converter.OptimizationStyle[style.capitalize()]],
                    target_platform=target_platform,
                )
        except Exception as error:  # onnxruntime raises bare RuntimeError/Fail subclasses
            raise QuantizeError(
                f"{onnx_path}: ONNX Runtime could not convert it to the ORT format: {error}"
            ) from error
        finally:
            tool_logger.setLevel(level)
        ort_name, config_name = ort_file_names(style)
        ort_path = output_dir / ort_name
        config_path = output_dir / config_name
        shutil.move(out_dir / ort_name, ort_path)
        # The tool's header lists the scratch paths it read; name the exported file instead.
        lines = (out_dir / config_name).read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if not line.startswith("# - ")]
        kept.insert(1 if kept and kept[0].startswith("#") else 0, f"# - {ort_path.name}")
        config_path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return OrtExport(ort_path, config_path, style)
