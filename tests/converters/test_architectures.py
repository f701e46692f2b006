"""Real architectures through the real frameworks and the real converter (issue 17 items 1 and 6).

PyTorch (.pt2): residual and inverted-residual CNNs, a transformer encoder with a padding mask, a recurrent
encoder-decoder with two inputs and a dict output. Keras: keras.applications, a transformer block, masked
embeddings, an encoder-decoder, a legacy .h5 file. TensorFlow: a SavedModel with two signatures and an int64
output. Random weights, nothing downloaded. Each case verifies at batch sizes 1 and 7 within the converter's
tolerance, converts in under 60 s, and fills a row of ``build/conversion-architectures.md``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from modelport.converters import ConversionReport, SavedModelOptions, VerifyOptions, convert
from modelport.converters.errors import CorruptSource

from tests.converters.conftest import ParityTable

pytestmark = pytest.mark.slow

CASE_SECONDS_LIMIT = 60.0
FRESH_ATOL, FRESH_RTOL = 1e-4, 1e-3  # the converter's defaults
# EfficientNetB0 with random weights amplifies float32 rounding (TensorFlow's kernels vs ONNX Runtime's) block
# by block: 4e-6 after the stem, 2e-4 in block 6's squeeze-excite gate, up to 1.7e-3 relative on a logit of
# fresh data (measured layer by layer; the same with TF_ENABLE_ONEDNN_OPTS=0). No op is mistranslated.
FRESH_RTOL_BY_CASE = {"EfficientNetB0": 5e-3}
Arrays = dict[str, npt.NDArray[Any]]


def _check_report(  # noqa: PLR0917  # private helper; every argument is required
    report: ConversionReport,
    case: str,
    framework: str,
    parity_table: ParityTable,
    inputs: Sequence[str],
    outputs: Sequence[str],
) -> None:
    parity_table.record_case(case, framework, report)
    assert [spec.name for spec in report.inputs] == list(inputs)
    assert [spec.name for spec in report.outputs] == list(outputs)
    assert all(spec.batch_dynamic for spec in (*report.inputs, *report.outputs))
    checked = {(error.output, error.batch_size) for error in report.errors}
    assert checked == {(name, batch) for name in outputs for batch in (1, 7)}
    assert all(error.passed for error in report.errors), report.errors
    assert report.seconds["total"] < CASE_SECONDS_LIMIT, report.seconds


def _onnx_run(report: ConversionReport, feeds: Mapping[str, npt.NDArray[Any]]) -> Arrays:
    """The published ONNX file run by ONNX Runtime on ``feeds``, outputs by name."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(report.model_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=True))


def _assert_same(got: Arrays, expected: Mapping[str, npt.NDArray[Any]], rtol: float = FRESH_RTOL) -> None:
    """ONNX Runtime's outputs match the framework's, and the framework's vary with the input: a parity check
    of a network whose outputs are all ~0 (dead random weights) would pass whatever the graph computes."""
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, name
        assert value.dtype.kind != "f" or np.ptp(value, axis=0).max() > 1e-3, f"{name}: outputs barely vary"
        np.testing.assert_allclose(got[name], value, atol=FRESH_ATOL, rtol=rtol, err_msg=name)


@pytest.fixture(scope="module")
def keras_module() -> Any:
    import keras

    return keras


# ---- PyTorch (.pt2) ----------------------------------------------------------------------------------------


def _torch_case(name: str) -> Any:
    from tests.converters.real_torch_models import TORCH_REAL_CASES

    return TORCH_REAL_CASES[name]


@pytest.mark.parametrize(
    "case",
    [
        "resnet_basic_blocks",
        "mobilenetv3_bneck",
        "transformer_encoder_masked",
        "transformer_encoder_int_mask",
        "gru_lstm_seq2seq",
    ],
)
def test_pytorch_architecture(case: str, tmp_path: Path, parity_table: ParityTable) -> None:
    import torch

    from tests.converters.real_torch_models import save_padding_mask_samples

    factory, examples, input_names, output_names = _torch_case(case)
    torch.manual_seed(0)
    module = factory().eval()
    arguments = examples()
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, arguments, dynamic_shapes=tuple({0: batch} for _ in arguments))
    source = tmp_path / f"{case}.pt2"
    torch.export.save(program, str(source))
    verification = None
    if case.startswith("transformer_encoder"):
        # Real padding (each sequence keeps a step): a generated all-padding row has no defined output.
        mask_dtype = np.int64 if case.endswith("int_mask") else np.bool_
        samples = save_padding_mask_samples(tmp_path / "samples.npz", mask_dtype=mask_dtype)
        verification = VerifyOptions(samples=samples)

    report = convert(source, repository=tmp_path / "repo", name=case, verification=verification)

    _check_report(report, case, "PyTorch (.pt2)", parity_table, input_names, output_names)
    if case.startswith("transformer_encoder"):
        assert report.inputs[1].dtype == ("int64" if case.endswith("int_mask") else "bool")
    # Fresh data at a third batch size: the ONNX file computes what the module computes.
    torch.manual_seed(5)
    fresh = [torch.cat([examples()[i] for _ in range(2)])[:3] for i in range(len(input_names))]
    with torch.no_grad():
        result = module(*fresh)
    expected = result if isinstance(result, dict) else {"output": result}
    feeds = {name: tensor.numpy() for name, tensor in zip(input_names, fresh, strict=True)}
    _assert_same(_onnx_run(report, feeds), {name: value.numpy() for name, value in expected.items()})


def test_pytorch_padding_mask_changes_the_output(tmp_path: Path) -> None:
    """The converted encoder honours src_key_padding_mask: padding a step changes a row's scores, and what is
    behind the padding does not."""
    import torch

    from tests.converters.real_torch_models import save_padding_mask_samples

    factory, examples, _, _ = _torch_case("transformer_encoder_masked")
    torch.manual_seed(0)
    module = factory().eval()
    program = torch.export.export(module, examples(), dynamic_shapes=({0: torch.export.Dim("batch")},) * 2)
    torch.export.save(program, str(tmp_path / "encoder.pt2"))
    samples = save_padding_mask_samples(tmp_path / "samples.npz")
    report = convert(
        tmp_path / "encoder.pt2",
        repository=tmp_path / "repo",
        name="encoder",
        verification=VerifyOptions(samples=samples),
    )
    assert report.inputs[1].dtype == "bool"
    sequence = np.random.default_rng(2).standard_normal((2, 6, 16)).astype(np.float32)
    padding = np.zeros((2, 6), dtype=bool)
    padding[1, 3:] = True
    scores = _onnx_run(report, {"sequence": sequence, "padding": padding})["output"]
    changed = sequence.copy()
    changed[1, 3:] += 10.0  # behind the padding of row 1 only
    rescored = _onnx_run(report, {"sequence": changed, "padding": padding})["output"]
    np.testing.assert_allclose(rescored[1], scores[1], atol=1e-5)
    assert not np.allclose(scores[0], scores[1])
    unpadded = _onnx_run(report, {"sequence": sequence, "padding": np.zeros((2, 6), dtype=bool)})["output"]
    assert not np.allclose(unpadded[1], scores[1], atol=1e-4)


# ---- Keras 3 (.keras, legacy .h5) --------------------------------------------------------------------------


def _keras_feeds(model: Any, rows: int) -> Arrays:
    """Fresh inputs for a Keras model: normal floats, token ids in [0, 11) (zeros are masked padding)."""
    rng = np.random.default_rng(7)
    feeds: Arrays = {}
    for tensor in model.inputs:
        shape = (rows, *tensor.shape[1:])
        if "int" in str(tensor.dtype):
            feeds[tensor.name] = rng.integers(0, 11, size=shape).astype(np.int32)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _keras_outputs(model: Any, feeds: Arrays) -> Arrays:
    result = model(feeds if len(feeds) > 1 else next(iter(feeds.values())), training=False)
    if isinstance(result, dict):
        return {name: np.asarray(value) for name, value in result.items()}
    return {model.output_names[0]: np.asarray(result)}


def _convert_keras(
    case: str, tmp_path: Path, parity_table: ParityTable, suffix: str = ".keras", seed: int = 0
) -> None:
    import keras

    from tests.converters.real_keras_models import KERAS_REAL_CASES

    keras.utils.set_random_seed(seed)
    source = tmp_path / f"{case}{suffix}"
    KERAS_REAL_CASES[case]().save(source)

    report = convert(source, repository=tmp_path / "repo", name=case)

    # The file as the converter read it: a reloaded model names its inputs after its input layers.
    model = keras.saving.load_model(source, compile=False)
    outputs = sorted(model.output) if isinstance(model.output, dict) else list(model.output_names)
    framework = "Keras (legacy .h5)" if suffix == ".h5" else "Keras (.keras)"
    _check_report(report, case, framework, parity_table, [t.name for t in model.inputs], outputs)
    feeds = _keras_feeds(model, 3)
    rtol = FRESH_RTOL_BY_CASE.get(case, FRESH_RTOL)
    _assert_same(_onnx_run(report, feeds), _keras_outputs(model, feeds), rtol)


@pytest.mark.parametrize("case", ["MobileNetV3Small", "MobileNetV2", "EfficientNetB0"])
def test_keras_application(case: str, tmp_path: Path, parity_table: ParityTable) -> None:
    _convert_keras(case, tmp_path, parity_table)


@pytest.mark.parametrize("case", ["transformer_block", "embedding_mask_lstm", "encoder_decoder_dict"])
def test_keras_architecture(case: str, tmp_path: Path, parity_table: ParityTable) -> None:
    _convert_keras(case, tmp_path, parity_table)


@pytest.mark.parametrize("kind", ["Activation", "Lambda"])
def test_keras_lambda_is_refused_with_the_way_out(kind: str, tmp_path: Path) -> None:
    """Not convertible from a file (Keras will not load a lambda in safe mode, and we keep safe mode): the
    error names the layer and says what to write instead; nothing is written."""
    from tests.converters.real_keras_models import lambda_block

    source = tmp_path / "block.keras"
    model = lambda_block(kind)
    if kind == "Activation":
        with pytest.warns(UserWarning, match="includes a `lambda`"):
            model.save(source)
    else:
        model.save(source)

    with pytest.raises(CorruptSource) as raised:
        convert(source, repository=tmp_path / "repo", name="block")

    message = str(raised.value)
    assert message.startswith(f"{source}: the model holds a Python lambda (layer 'tanh_gelu', class {kind})")
    assert "@keras.saving.register_keras_serializable()" in message
    assert "keras.ops" in message
    assert "modelport convert package.module:function" in message
    assert "\n" not in message
    assert not (tmp_path / "repo" / "block").exists()


def test_keras_legacy_h5(tmp_path: Path, parity_table: ParityTable) -> None:
    _convert_keras("legacy_h5_cnn", tmp_path, parity_table, suffix=".h5")
    assert (tmp_path / "legacy_h5_cnn.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # HDF5, not a .keras zip


# ---- TensorFlow SavedModel ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_signatures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    from tests.converters.real_keras_models import save_two_signatures

    keras.utils.set_random_seed(2)
    path = tmp_path_factory.mktemp("savedmodel") / "classifier"
    save_two_signatures(path)
    return path


@pytest.mark.parametrize("signature", ["classify", "embed"])
def test_saved_model_signature(
    signature: str, two_signatures: Path, tmp_path: Path, parity_table: ParityTable
) -> None:
    import tensorflow as tf

    from tests.converters.real_keras_models import SAVED_MODEL_SIGNATURES

    report = convert(
        two_signatures,
        repository=tmp_path / "repo",
        name=signature,
        options=SavedModelOptions(signature=signature),
    )

    outputs = SAVED_MODEL_SIGNATURES[signature]
    _check_report(
        report,
        f"savedmodel_{signature}",
        "TensorFlow (SavedModel)",
        parity_table,
        ["features"],
        sorted(outputs),
    )
    assert {spec.name: np.dtype(spec.dtype).kind for spec in report.outputs} == outputs
    features = np.random.default_rng(4).standard_normal((9, 12)).astype(np.float32)
    served = tf.saved_model.load(str(two_signatures)).signatures[signature]
    expected = {name: value.numpy() for name, value in served(features=tf.constant(features)).items()}
    got = _onnx_run(report, {"features": features})
    _assert_same(got, expected)
    if "label" in outputs:
        assert got["label"].dtype == np.int64
        np.testing.assert_array_equal(got["label"], np.argmax(got["probabilities"], axis=-1))


def test_saved_model_second_signature_from_the_cli(two_signatures: Path, tmp_path: Path) -> None:
    """``modelport convert DIR --signature embed`` publishes the second signature, not the default."""
    import json

    from tests.converters.test_cli import run_cli

    result = run_cli(
        two_signatures, "--name", "embedder", "--repository", tmp_path / "repo", "--signature", "embed"
    )

    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "repo" / "embedder" / "1" / "conversion.json").read_text())
    assert [output["name"] for output in document["signature"]["outputs"]] == ["embedding"]
    assert [output["datatype"] for output in document["signature"]["outputs"]] == ["FP32"]
    assert all(row["passed"] for row in document["verification"]["outputs"])
