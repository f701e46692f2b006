"""``modelport.converters.convert`` with its typed options: every source kind, the signature it reads, the
inputs it generates or is given, and what it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from modelport.converters import (
    FactoryOptions,
    InvalidOption,
    KerasOptions,
    MissingInputSpec,
    SavedModelOptions,
    TorchScriptOptions,
    VerificationFailed,
    VerifyOptions,
    convert,
    parse_input_spec,
)

pytestmark = pytest.mark.slow


def test_torchscript_with_typed_options(tmp_path: Path) -> None:
    import torch

    from tests.converters.torch_models import TORCH_ARCHITECTURES

    source = tmp_path / "lstm.pt"
    module = TORCH_ARCHITECTURES["lstm"][0]().eval()
    traced = torch.jit.trace(module, (torch.randn(2, 6, 4),))  # type: ignore[no-untyped-call]  # unannotated
    torch.jit.save(traced, str(source))
    options = TorchScriptOptions(inputs=(parse_input_spec("sequence:float32:-1,6,4"),))

    report = convert(source, repository=tmp_path / "repo", name="lstm", options=options)

    assert report.source_kind == "torchscript"
    assert [(s.name, s.dims) for s in report.inputs] == [("sequence", (-1, 6, 4))]
    assert report.max_abs_error <= 1e-5
    assert {e.batch_size for e in report.errors} == {1, 7}


def test_factory_loads_the_weights_it_is_given(tmp_path: Path) -> None:
    import onnxruntime
    import torch

    from tests.converters.factories import tiny_mlp

    torch.manual_seed(42)
    trained = tiny_mlp().eval()
    weights = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), weights)
    options = FactoryOptions(weights=weights, inputs=(parse_input_spec("input:float32:-1,4"),))

    report = convert(
        "tests.converters.factories:tiny_mlp", repository=tmp_path / "r", name="m", options=options
    )

    batch = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(report.model_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = trained(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": batch})[0], expected, atol=1e-5)
    document = json.loads(report.report_path.read_text())
    assert document["source"]["sha256"] == __import__("hashlib").sha256(weights.read_bytes()).hexdigest()


def test_factory_input_names_must_be_forward_arguments(tmp_path: Path) -> None:
    options = FactoryOptions(inputs=(parse_input_spec("x:float32:-1,4"),))
    with pytest.raises(InvalidOption, match=r"forward\(\)'s arguments \(input\); unknown: x; missing: input"):
        convert("tests.converters.factories:tiny_mlp", repository=tmp_path / "r", name="m", options=options)
    with pytest.raises(MissingInputSpec, match="--input"):
        convert("tests.converters.factories:tiny_mlp", repository=tmp_path / "r", name="m")
    assert not (tmp_path / "r").exists()


def test_a_kept_config_that_is_not_a_mapping_gets_no_notes(tmp_path: Path) -> None:
    (tmp_path / "r" / "m").mkdir(parents=True)
    (tmp_path / "r" / "m" / "config.yaml").write_text("- not a mapping\n", encoding="utf-8")
    options = FactoryOptions(inputs=(parse_input_spec("input:float32:-1,4"),))
    report = convert(
        "tests.converters.factories:tiny_mlp", repository=tmp_path / "r", name="m", options=options
    )
    assert report.version == 1 and not report.config_created and report.notes == ()


def test_generated_token_ids_stay_inside_the_embedding(tmp_path: Path) -> None:
    options = FactoryOptions(inputs=(parse_input_spec("tokens:int64:-1,9"),))
    # The embedding has 5 rows: an id of 5 or more makes torch raise, so passing proves the ids fit.
    report = convert(
        "tests.converters.factories:embedding_classifier",
        repository=tmp_path / "r",
        name="m",
        options=options,
    )
    assert report.inputs[0].dtype == "int64"
    assert report.max_abs_error <= 1e-5


def test_samples_file_sets_the_inputs_and_batch_sizes(tmp_path: Path) -> None:
    samples = tmp_path / "samples.npz"
    np.savez(samples, tokens=np.array([[0, 1, 2], [4, 4, 4], [3, 2, 1]], dtype=np.int32))
    options = FactoryOptions(inputs=(parse_input_spec("tokens:int64:-1,3"),))
    report = convert(
        "tests.converters.factories:embedding_classifier",
        repository=tmp_path / "r",
        name="m",
        options=options,
        verification=VerifyOptions(samples=samples),
    )
    assert report.samples == str(samples)
    assert sorted(e.batch_size for e in report.errors) == [1, 3]

    np.savez(samples, other=np.zeros((2, 3)))
    with pytest.raises(InvalidOption, match="no array named 'tokens'"):
        convert(
            "tests.converters.factories:embedding_classifier",
            repository=tmp_path / "r",
            name="m",
            options=options,
            verification=VerifyOptions(samples=samples),
        )


def test_torch_dict_outputs_keep_their_keys_and_several_inputs_their_names(tmp_path: Path) -> None:
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mix = torch.nn.Linear(6, 2)

        def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
            joined = self.mix(torch.cat([left, right], dim=1))
            return {"scores": joined, "probabilities": torch.softmax(joined, dim=1)}

    program = torch.export.export(
        TwoHeads().eval(),
        (torch.randn(2, 4), torch.randn(2, 2)),
        dynamic_shapes=({0: torch.export.Dim("batch")}, {0: torch.export.Dim("batch")}),
    )
    source = tmp_path / "heads.pt2"
    torch.export.save(program, str(source))
    report = convert(source, repository=tmp_path / "r", name="heads")
    assert [s.name for s in report.inputs] == ["left", "right"]
    assert [s.name for s in report.outputs] == ["scores", "probabilities"]
    config = yaml.safe_load(report.config_path.read_text())
    assert [t["dims"] for t in config["inputs"]] == [[4], [2]]


def test_keras_factory_and_unbuilt_model(tmp_path: Path) -> None:
    report = convert("tests.converters.factories:keras_mlp", repository=tmp_path / "r", name="k")
    assert [s.name for s in report.inputs] == ["features"]
    assert [s.name for s in report.outputs] == ["probabilities"]
    assert report.framework == "keras"

    with pytest.raises(MissingInputSpec, match="never built"):
        convert("tests.converters.factories:keras_unbuilt", repository=tmp_path / "r", name="u")
    options = FactoryOptions(inputs=(parse_input_spec("readings:float32:-1,3"),))
    built = convert(
        "tests.converters.factories:keras_unbuilt", repository=tmp_path / "r", name="u", options=options
    )
    assert [(s.name, s.dims) for s in built.inputs] == [("readings", (-1, 3))]
    assert built.outputs[0].dims == (-1, 2)


def test_fixed_batch_is_verified_at_its_size_and_configured_without_batching(tmp_path: Path) -> None:
    import keras

    features = keras.Input((4,), batch_size=3, name="features")
    model = keras.Model(features, keras.layers.Dense(2, name="scores")(features))
    source = tmp_path / "fixed.keras"
    model.save(source)

    report = convert(source, repository=tmp_path / "r", name="fixed", options=KerasOptions())

    assert report.inputs[0].dims == (3, 4)
    assert [e.batch_size for e in report.errors] == [3]
    assert report.max_batch_size == 0
    config = yaml.safe_load(report.config_path.read_text())
    assert config == {
        "max_batch_size": 0,
        "inputs": [{"name": "features", "datatype": "FP32", "dims": [3, 4]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "dims": [3, 2]}],
    }


def test_saved_model_signature_choice(tmp_path: Path) -> None:
    from tests.converters.keras_models import KERAS_ARCHITECTURES, save_saved_model

    source = tmp_path / "saved"
    save_saved_model(KERAS_ARCHITECTURES["mlp"](), source)
    with pytest.raises(InvalidOption, match=r"no signature 'predict' .*serving_default"):
        convert(source, repository=tmp_path / "r", name="m", options=SavedModelOptions(signature="predict"))
    report = convert(source, repository=tmp_path / "r", name="m", options=SavedModelOptions())
    assert report.source_kind == "tensorflow-savedmodel"


def test_failed_verification_writes_nothing(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    (repository / "noisy" / "1").mkdir(parents=True)
    options = FactoryOptions(inputs=(parse_input_spec("x:float32:-1,4"),))
    with pytest.raises(VerificationFailed) as caught:
        convert("tests.converters.factories:noisy", repository=repository, name="noisy", options=options)
    assert {(m.output, m.batch_size) for m in caught.value.mismatches} == {("output", 1), ("output", 7)}
    assert sorted(p.name for p in (repository / "noisy").iterdir()) == ["1"]
    # A loose enough tolerance accepts the same model: the check is real, not a fixed verdict.
    loose = VerifyOptions(atol=2.0, rtol=0.0)
    report = convert(
        "tests.converters.factories:noisy",
        repository=repository,
        name="noisy",
        options=options,
        verification=loose,
    )
    assert report.version == 2
    assert sorted(p.name for p in (repository / "noisy").iterdir()) == ["1", "2", "config.yaml"]


def test_legacy_h5_file_and_a_kept_config_that_no_longer_matches(tmp_path: Path) -> None:
    from tests.converters.keras_models import KERAS_ARCHITECTURES

    source = tmp_path / "cnn.h5"
    KERAS_ARCHITECTURES["cnn"]().save(source)
    first = convert(source, repository=tmp_path / "r", name="m")
    assert first.source_kind == "keras"
    assert [s.name for s in first.inputs] == ["image"]
    assert first.max_abs_error <= 1e-5
    assert first.notes == ()

    second = convert("tests.converters.factories:keras_mlp", repository=tmp_path / "r", name="m")
    assert second.version == 2
    assert not second.config_created
    assert any("config.yaml: kept, but its inputs (image)" in note for note in second.notes)
    assert json.loads(second.report_path.read_text())["notes"] == list(second.notes)


def test_unsupported_operator_in_torchscript_names_the_layer(tmp_path: Path) -> None:
    import torch
    from modelport.converters import UnsupportedOperator

    from tests.converters.custom_op_model import with_custom_operator

    source = tmp_path / "custom.pt"
    traced = torch.jit.trace(with_custom_operator().eval(), (torch.randn(2, 4),))  # type: ignore[no-untyped-call]  # unannotated
    torch.jit.save(traced, str(source))
    options = TorchScriptOptions(inputs=(parse_input_spec("input:float32:-1,4"),))
    with pytest.raises(UnsupportedOperator) as caught:
        convert(source, repository=tmp_path / "r", name="c", options=options)
    assert caught.value.operator == "modelport_test::wiggle"
    assert caught.value.layer == "activation (Wiggle)"
    assert str(source) in str(caught.value)
    assert not (tmp_path / "r").exists()


def test_keras_model_with_two_inputs_and_named_dict_outputs(tmp_path: Path) -> None:
    import keras

    left, right = keras.Input((4,), name="left"), keras.Input((3,), name="right")
    hidden = keras.layers.Dense(5, activation="relu")(keras.layers.Concatenate()([left, right]))
    score = keras.layers.Dense(2, name="score")(hidden)
    flag = keras.layers.Dense(1, activation="sigmoid", name="flag")(hidden)
    source = tmp_path / "two.keras"
    keras.Model({"left": left, "right": right}, {"flag": flag, "score": score}).save(source)

    report = convert(source, repository=tmp_path / "r", name="two")

    assert [s.describe() for s in report.inputs] == ["left: float32[-1, 4]", "right: float32[-1, 3]"]
    assert sorted(s.describe() for s in report.outputs) == ["flag: float32[-1, 1]", "score: float32[-1, 2]"]
    assert {(e.output, e.batch_size) for e in report.errors} == {
        (name, batch) for name in ("flag", "score") for batch in (1, 7)
    }
    assert report.max_abs_error <= 1e-5
