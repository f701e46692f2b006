"""``modelport convert`` end to end: the real command in a subprocess, its summary, its errors, and a
repository left untouched by every failure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``modelport convert ARGS`` from the repository root (where the test factories import from)."""
    script = shutil.which("modelport", path=str(Path(sys.executable).parent))
    entry = [script] if script else [sys.executable, "-c", "from modelport.server.cli import main; main()"]
    command = [*entry, "convert", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A non-zero exit, an ``error:`` line holding every fragment, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_untouched(repository: Path) -> None:
    """Nothing was written: no repository at all, or one with no model folder and no staging leftovers."""
    assert not repository.exists() or list(repository.iterdir()) == []


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small torch.export program (.pt2) with a dynamic batch."""
    import torch

    from tests.converters.torch_models import TORCH_ARCHITECTURES

    factory, _, row = TORCH_ARCHITECTURES["mlp"]
    program = torch.export.export(
        factory().eval(), (torch.randn(2, *row),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    path = tmp_path_factory.mktemp("sources") / "classifier.pt2"
    torch.export.save(program, str(path))
    return path


@pytest.mark.slow
def test_converts_and_prints_a_summary_then_adds_the_next_version(program: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    first = run_cli(program, "--name", "clf", "--repository", repository)
    assert first.returncode == 0, first.stderr
    for expected in (
        "clf version 1",
        "features: float32[-1, 12]",
        "output: float32[-1, 3]",
        "max error",
        "KiB",
    ):
        assert expected in first.stdout
    assert "Comparing the framework with ONNX Runtime" in first.stderr
    config_before = (repository / "clf" / "config.yaml").read_text()

    second = run_cli(program, "--name", "clf", "--repository", repository, "--atol", "1e-5")
    assert second.returncode == 0, second.stderr
    assert "clf version 2" in second.stdout
    assert "(kept)" in second.stdout
    assert sorted(p.name for p in (repository / "clf").iterdir()) == ["1", "2", "config.yaml"]
    assert (repository / "clf" / "config.yaml").read_text() == config_before
    report = json.loads((repository / "clf" / "2" / "conversion.json").read_text())
    assert report["version"] == 2
    assert report["verification"]["atol"] == 1e-5


def test_missing_file(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "absent.keras", "--repository", tmp_path / "repo")
    assert_one_line_error(result, "absent.keras", "no such file")
    assert_untouched(tmp_path / "repo")


def test_unknown_format(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\0" * 16)
    result = run_cli(source, "--repository", tmp_path / "repo")
    assert_one_line_error(result, "weights.bin", "unknown format", ".pt2")
    assert_untouched(tmp_path / "repo")


def test_directory_that_is_not_a_saved_model(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    result = run_cli(tmp_path / "folder", "--repository", tmp_path / "repo")
    assert_one_line_error(result, "folder", "not a TensorFlow SavedModel", "saved_model.pb")


def test_bad_input_spec(tmp_path: Path) -> None:
    program = tmp_path / "never_read.pt"
    program.write_bytes(b"the options are refused before the file is read")
    result = run_cli(program, "--repository", tmp_path / "repo", "--input", "features:float32")
    assert_one_line_error(result, "features:float32", "NAME:DTYPE:DIMS")
    result = run_cli(program, "--repository", tmp_path / "repo", "--input", "x:complex7:-1,3")
    assert_one_line_error(result, "complex7", "unknown datatype")


def test_existing_version_is_refused(tmp_path: Path) -> None:
    program = tmp_path / "never_read.pt2"
    program.write_bytes(b"the version is refused before the file is read")
    (tmp_path / "repo" / "clf" / "1").mkdir(parents=True)
    result = run_cli(program, "--name", "clf", "--repository", tmp_path / "repo", "--version", "1")
    assert_one_line_error(result, "version 1 of 'clf' exists", "--version")
    assert list((tmp_path / "repo" / "clf" / "1").iterdir()) == []


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    source = tmp_path / "model.txt"
    source.write_text("hello")
    result = run_cli(source, "--repository", tmp_path / "repo", "--verbose")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "UnknownFormat" in result.stderr


@pytest.mark.slow
def test_corrupt_keras_archive(tmp_path: Path) -> None:
    source = tmp_path / "broken.keras"
    source.write_bytes(b"PK\x03\x04 this is not a zip archive")
    result = run_cli(source, "--repository", tmp_path / "repo")
    assert_one_line_error(result, "broken.keras", "not a readable Keras model", "model.save")
    assert_untouched(tmp_path / "repo")


@pytest.mark.slow
def test_corrupt_torch_program(tmp_path: Path) -> None:
    source = tmp_path / "broken.pt2"
    source.write_bytes(b"not a program")
    result = run_cli(source, "--repository", tmp_path / "repo")
    assert_one_line_error(result, "broken.pt2", "not a readable torch.export program", "torch.export.save")
    assert_untouched(tmp_path / "repo")


@pytest.mark.slow
def test_torchscript_without_input_specs(tmp_path: Path) -> None:
    import torch

    from tests.converters.torch_models import TORCH_ARCHITECTURES

    source = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(TORCH_ARCHITECTURES["mlp"][0]().eval()), str(source))
    result = run_cli(source, "--repository", tmp_path / "repo")
    assert_one_line_error(result, "scripted.pt", "--input", "features")
    assert_untouched(tmp_path / "repo")


@pytest.mark.slow
def test_model_that_cannot_be_exported(tmp_path: Path) -> None:
    result = run_cli(
        "tests.converters.factories:data_dependent",
        "--repository",
        tmp_path / "repo",
        "--input",
        "x:float32:-1,4",
    )
    line = assert_one_line_error(result, "data_dependent", "torch.export cannot trace", "factories.py")
    assert "if x.sum() > 0" in line
    assert_untouched(tmp_path / "repo")


@pytest.mark.slow
def test_unsupported_torch_operator_names_op_and_layer(tmp_path: Path) -> None:
    result = run_cli(
        "tests.converters.custom_op_model:with_custom_operator",
        "--repository",
        tmp_path / "repo",
        "--input",
        "input:float32:-1,4",
    )
    assert_one_line_error(result, "modelport_test.wiggle", "activation (Wiggle)", "no ONNX translation")
    assert_untouched(tmp_path / "repo")


@pytest.mark.slow
def test_unsupported_tensorflow_operator_names_op_and_layer(tmp_path: Path) -> None:
    result = run_cli("tests.converters.factories:keras_special_function", "--repository", tmp_path / "repo")
    assert_one_line_error(result, "'BesselI0e'", "bessel_layer", "no ONNX translation")
    assert_untouched(tmp_path / "repo")


@pytest.mark.slow
def test_outputs_beyond_tolerance_fail_with_a_table(tmp_path: Path) -> None:
    result = run_cli(
        "tests.converters.factories:noisy", "--repository", tmp_path / "repo", "--input", "x:float32:-1,4"
    )
    assert result.returncode == 2
    assert_one_line_error(result, "beyond tolerance", "nothing written")
    header = next(line for line in result.stderr.splitlines() if "max abs error" in line and "output" in line)
    for column in ("batch", "max rel error", "tolerance"):
        assert column in header
    rows = [line for line in result.stderr.splitlines() if line.strip("│ ").startswith("output ")]
    assert [row.split("│")[2].strip() for row in rows] == ["1", "7"]
    assert_untouched(tmp_path / "repo")


def test_factory_that_returns_no_model(tmp_path: Path) -> None:
    result = run_cli("tests.converters.factories:not_a_model", "--repository", tmp_path / "repo")
    assert_one_line_error(result, "not_a_model", "builtins.dict", "torch.nn.Module or a Keras model")


def test_factory_module_that_does_not_exist(tmp_path: Path) -> None:
    result = run_cli("nowhere.models:build", "--repository", tmp_path / "repo")
    assert_one_line_error(result, "nowhere.models:build", "no module named 'nowhere'")
