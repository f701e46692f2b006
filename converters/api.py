"""``convert()``: one source -> a verified ONNX model version in a model repository, and its report."""

from __future__ import annotations

import datetime
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import onnx
import yaml

from .custom_ops import CustomOp, attach_custom_functions
from .errors import InvalidOption, SourceNotFound
from .exported import ExportedModel
from .onnx_checks import check_graph, graph_signature, opset_of, strip_debug_info
from .op_rewrites import rewrite_known_ops
from .options import (
    FactoryOptions,
    KerasOptions,
    SavedModelOptions,
    SourceOptions,
    TorchExportOptions,
    TorchScriptOptions,
    VerifyOptions,
)
from .quiet import silenced
from .report import ConversionReport
from .repository_writer import config_document, plan_placement, publish
from .samples import KEPT_SAMPLES_FILE, kept_samples
from .signature_match import apply_given_inputs, reconcile
from .sources import SourceKind, default_options, detect_kind, kind_of_options
from .tensor_specs import TensorSpec
from .verify import verify

__all__ = ["DEFAULT_MAX_BATCH_SIZE", "Progress", "convert"]

DEFAULT_MAX_BATCH_SIZE = 64
Progress = Callable[[str], None]


def _sha256(path: Path | None) -> tuple[str, int]:
    """Checksum and size of a file, or of a directory's files in path order (names included)."""
    if path is None or not path.exists():
        return "", 0
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    size = 0
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        data = file.read_bytes()
        size += len(data)
        digest.update(data)
    return digest.hexdigest(), size


def _export(source: str, options: SourceOptions, custom_ops: tuple[CustomOp, ...]) -> ExportedModel:
    path = Path(source)
    torch_ops = [op for op in custom_ops if op.is_torch_operator]
    if torch_ops and not isinstance(options, (TorchExportOptions, FactoryOptions)):
        raise InvalidOption(
            f"{source}: --custom-op {torch_ops[0].name} names a torch operator, which only torch.export "
            "sources (.pt2, torch factories) translate; for TorchScript, save a torch.export program instead"
        )
    if isinstance(options, TorchExportOptions):
        from .frontends.torch_export import export_program

        return export_program(path, options, custom_ops=custom_ops)
    if isinstance(options, TorchScriptOptions):
        from .frontends.torch_export import export_torchscript

        return export_torchscript(path, options)
    if isinstance(options, KerasOptions):
        from .frontends.keras_export import load_keras

        return load_keras(path, options)
    if isinstance(options, SavedModelOptions):
        from .frontends.savedmodel_export import export_saved_model

        return export_saved_model(path, options)
    from .frontends.factory import export_factory

    return export_factory(source, options, custom_ops=custom_ops)


def _requested_inputs(options: SourceOptions) -> tuple[TensorSpec, ...]:
    return options.inputs


def _refine(
    exported: ExportedModel, options: SourceOptions, custom_ops: tuple[CustomOp, ...], source: str
) -> None:
    """What follows the exporter, in place: ``--input`` checked against a source's own signature, the user's
    ``--custom-op`` functions attached, the known rewrites of undefined operators applied."""
    given = _requested_inputs(options)
    if given and exported.carries_signature:
        own, _ = graph_signature(exported.model)
        apply_given_inputs(exported, own, reconcile(own, given, source), source)
    exported.notes.extend(attach_custom_functions(exported.model, custom_ops))
    exported.notes.extend(rewrite_known_ops(exported.model))


def _kept_samples(
    verification: VerifyOptions, inputs: tuple[TensorSpec, ...], notes: list[str]
) -> bytes | None:
    """The samples file kept beside the model (from ``--samples``), noted in ``notes``; else ``None``."""
    if verification.samples is None:
        return None
    content, rows = kept_samples(verification.samples, inputs)
    notes.append(
        f"kept the first {rows} rows of {verification.samples} as {KEPT_SAMPLES_FILE} "
        f"({len(content)} bytes): quantize and export-mobile calibrate and judge on them"
    )
    return content


def _notes(
    options: SourceOptions, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], config: Path
) -> list[str]:
    """What the user should know although the conversion succeeded."""
    notes = []
    graph = {spec.name: spec for spec in inputs}
    for wanted in _requested_inputs(options):
        got = graph.get(wanted.name)
        if got is None or len(got.dims) != len(wanted.dims):
            continue
        fixed = [axis for axis, (w, g) in enumerate(zip(wanted.dims, got.dims, strict=True)) if w < 0 <= g]
        if fixed:
            notes.append(
                f"input '{wanted.name}': axes {fixed} were asked dynamic but the exporter fixed them "
                f"({got.describe()}): the model's code specialises them"
            )
    if config.is_file():
        try:
            document = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            document = None
        if not isinstance(document, dict):  # unreadable or not a mapping: the server reports that, not us
            document = {}
        for key, specs in (("inputs", inputs), ("outputs", outputs)):
            listed = [t.get("name") for t in document.get(key) or [] if isinstance(t, dict)]
            if listed and listed != [spec.name for spec in specs]:
                notes.append(
                    f"{config}: kept, but its {key} ({', '.join(map(str, listed))}) differ from this"
                    f" version's ({', '.join(spec.name for spec in specs)}); update or remove it"
                )
    return notes


def _checksum_target(source: str, options: SourceOptions) -> Path | None:
    if isinstance(options, FactoryOptions):
        if options.weights is not None:
            return options.weights
        from .frontends.factory import factory_file

        return factory_file(source)
    return Path(source)


def convert(
    source: str | Path,
    *,
    repository: str | Path,
    name: str,
    version: int | None = None,
    options: SourceOptions | None = None,
    verification: VerifyOptions | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    progress: Progress | None = None,
    quiet: bool = True,
    custom_ops: Sequence[CustomOp] = (),
) -> ConversionReport:
    """Convert ``source`` to ONNX, verify it against the framework, publish it as ``repository/name/version``.

    ``source`` is a ``.pt2``, ``.pt``, ``.keras``/``.h5`` file, a SavedModel directory, or a
    ``package.module:factory`` string. ``options`` selects and configures the converter (default: from the
    source's kind, which then must carry its own input signature). ``version`` defaults to one above the
    highest present. ``max_batch_size`` goes to a newly created ``config.yaml`` when the batch axis is dynamic
    (0 when it is fixed). ``quiet`` hides the frameworks' own console output (it is logged at DEBUG instead).
    ``custom_ops`` supply ONNX functions for operators without a translation (:mod:`.custom_ops`); operators
    ONNX lacks but that have an exact standard expression are rewritten anyway (:mod:`.op_rewrites`).

    Raises a :class:`~modelport.converters.errors.ConversionError` subclass; then nothing is written.
    """
    started = time.perf_counter()
    say = progress or (lambda _step: None)
    source = str(source)
    verification = verification or VerifyOptions()
    kind = detect_kind(source) if options is None else kind_of_options(options)
    if options is None:
        options = default_options(kind, source=source)
    if kind is not SourceKind.FACTORY and not Path(source).exists():
        raise SourceNotFound(f"{source}: no such file or directory; check the path")
    if max_batch_size < 0:
        raise InvalidOption(f"max_batch_size {max_batch_size}: must be 0 or more")
    placement = plan_placement(Path(repository), name, version)
    seconds: dict[str, float] = {}

    say(f"Loading and exporting {kind.value} model")
    mark = time.perf_counter()
    with silenced(quiet):
        exported = _export(source, options, tuple(custom_ops))
    _refine(exported, options, tuple(custom_ops), source)
    seconds["export"] = time.perf_counter() - mark

    say("Checking the ONNX graph")
    mark = time.perf_counter()
    inferred = check_graph(exported.model, source)
    strip_debug_info(exported.model)
    inputs, outputs = graph_signature(inferred)
    seconds["check"] = time.perf_counter() - mark

    say("Comparing the framework with ONNX Runtime")
    mark = time.perf_counter()
    with silenced(quiet):
        errors = verify(exported, inputs, outputs, verification, source=source)
    seconds["verify"] = time.perf_counter() - mark

    say(f"Writing {name}/{placement.version}")
    import onnxruntime

    batched = all(spec.batch_dynamic for spec in (*inputs, *outputs))
    batch_limit = max_batch_size if batched else 0
    model_bytes = exported.model.SerializeToString()
    kept = _kept_samples(verification, inputs, exported.notes)
    sha256, source_bytes = _sha256(_checksum_target(source, options))
    seconds["total"] = time.perf_counter() - started
    report = ConversionReport(
        name=name,
        version=placement.version,
        repository=placement.repository,
        model_path=placement.version_dir / "model.onnx",
        config_path=placement.config_path,
        config_created=False,
        report_path=placement.version_dir / "conversion.json",
        source=source,
        source_kind=kind.value,
        source_sha256=sha256,
        source_bytes=source_bytes,
        framework=exported.framework,
        framework_version=exported.framework_version,
        converter=exported.converter,
        converter_version=exported.converter_version,
        onnx_version=onnx.__version__,
        onnxruntime_version=onnxruntime.__version__,
        opset=opset_of(exported.model),
        inputs=inputs,
        outputs=outputs,
        max_batch_size=batch_limit,
        samples=str(verification.samples) if verification.samples else "generated",
        atol=verification.atol,
        rtol=verification.rtol,
        errors=errors,
        onnx_bytes=len(model_bytes),
        seconds={key: round(value, 3) for key, value in seconds.items()},
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        notes=(*exported.notes, *_notes(options, inputs, outputs, placement.config_path)),
    )
    created = publish(
        placement,
        model_bytes=model_bytes,
        report=report.to_json(),
        config=config_document(inputs, outputs, batch_limit),
        samples=kept,
    )
    if created:
        from dataclasses import replace

        report = replace(report, config_created=True)
    return report
