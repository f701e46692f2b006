"""``modelport import-mar`` end to end: archives made by ``torch-model-archiver`` from small models, the real
command in a subprocess, the imported model served through TorchServe's predictions API, and archives that
must be refused with nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.converters.test_cli import assert_one_line_error, assert_untouched
from tests.helpers.server_process import start_server

ROOT = Path(__file__).resolve().parents[2]
MODEL_PY = """
import torch


class TinyClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(6, 8)
        self.out = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))
"""
# A custom handler whose code must never run: importing or executing it would leave a file.
HANDLER_PY = """
import pathlib
pathlib.Path(__file__).with_name("HANDLER_RAN").write_text("ran")
from torchvision import transforms
import torch.nn.functional as F

class Handler:
    def preprocess(self, data):
        return transforms.Normalize(mean=[0.5], std=[0.5])(data)

    def postprocess(self, data):
        return F.softmax(data, dim=1).tolist()
"""
LABELS = {"0": ["n0", "cat"], "1": ["n1", "dog"], "2": ["n2", "fish"], "3": ["n3", "bird"]}
INPUT = "x:float32:-1,6"

pytestmark = pytest.mark.slow


def run(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    script = shutil.which("modelport", path=str(Path(sys.executable).parent))
    entry = [script] if script else [sys.executable, "-c", "from modelport.server.cli import main; main()"]
    return subprocess.run(
        [*entry, "import-mar", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def archiver(folder: Path, name: str, *args: str) -> Path:
    """``torch-model-archiver --model-name NAME ARGS`` run in ``folder``; the .mar it made."""
    tool = shutil.which("torch-model-archiver", path=str(Path(sys.executable).parent))
    assert tool is not None, "torch-model-archiver (the test extra) is not installed"
    command = [tool, "--model-name", name, "--export-path", str(folder), "--force", *args]
    subprocess.run(command, cwd=folder, check=True, capture_output=True, timeout=120)
    return folder / f"{name}.mar"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.py, its state dict (weights.pth), the traced TorchScript (traced.pt), labels and a handler."""
    import torch

    folder = tmp_path_factory.mktemp("mar-sources")
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "index_to_name.json").write_text(json.dumps(LABELS))
    (folder / "handler.py").write_text(HANDLER_PY)
    (folder / "vocab.txt").write_text("hello\nworld\n")
    sys.path.insert(0, str(folder))
    try:
        import model as source  # type: ignore[import-not-found]  # the file written above

        torch.manual_seed(0)
        module = source.TinyClassifier().eval()
        torch.save(module.state_dict(), folder / "weights.pth")
        traced = torch.jit.trace(module, torch.zeros(1, 6))  # type: ignore[no-untyped-call]  # unannotated
        traced.save(str(folder / "traced.pt"))
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("model", None)
    return folder


def _torch_logits(sources: Path, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import torch

    module = torch.jit.load(str(sources / "traced.pt"))  # type: ignore[no-untyped-call]  # unannotated
    with torch.no_grad():
        result: np.ndarray[Any, Any] = module(torch.from_numpy(rows)).numpy()
    return result


def test_a_torchscript_archive_imports_and_serves_as_torchserve_did(sources: Path, tmp_path: Path) -> None:
    mar = archiver(
        sources,
        "tiny",
        "--version",
        "3.0",
        "--serialized-file",
        "traced.pt",
        "--handler",
        "image_classifier",
        "--extra-files",
        "index_to_name.json",
    )
    repository = tmp_path / "repo"
    result = run(mar, "--repository", repository, "--input", INPUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repository / "tiny" / "3" / "model.onnx").is_file()  # modelVersion 3.0 -> version 3
    assert (repository / "tiny" / "labels.txt").read_text().split("\n")[:4] == ["cat", "dog", "fish", "bird"]
    assert "torchscript model, handler image_classifier" in result.stdout
    assert "Normalize(mean=[0.485, 0.456, 0.406]" in result.stdout and "softmax" in result.stdout
    rows = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    logits = _torch_logits(sources, rows)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    with start_server(repository) as server:
        answer = httpx.post(
            f"http://{server.http_url}/predictions/tiny", json=rows.tolist(), timeout=30
        ).json()
    names = ["cat", "dog", "fish", "bird"]
    for entry, probabilities in zip(answer, expected, strict=True):
        order = np.argsort(-probabilities)
        assert list(entry) == [names[i] for i in order]
        np.testing.assert_allclose(list(entry.values()), probabilities[order], rtol=1e-3, atol=1e-5)


def test_an_eager_archive_converts_through_the_factory_path(sources: Path, tmp_path: Path) -> None:
    mar = archiver(
        sources,
        "eager",
        "--version",
        "1.0",
        "--model-file",
        "model.py",
        "--serialized-file",
        "weights.pth",
        "--handler",
        "handler.py",
        "--extra-files",
        "vocab.txt",
    )
    repository = tmp_path / "repo"
    result = run(mar, "--repository", repository, "--input", INPUT, "--name", "imported")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "eager (factory) model" in result.stdout
    # The custom handler was read, not run; its steps and calls are reported.
    assert "custom handler handler.py (not run): defines postprocess, preprocess" in result.stdout
    assert "Normalize" in result.stdout and "softmax" in result.stdout
    assert "not used (the handler's own files): vocab.txt" in result.stdout
    assert not list(tmp_path.rglob("HANDLER_RAN")) and not (sources / "HANDLER_RAN").exists()
    import onnxruntime as ort

    rows = np.random.default_rng(2).standard_normal((2, 6)).astype(np.float32)
    session = ort.InferenceSession(str(repository / "imported" / "1" / "model.onnx"))
    np.testing.assert_allclose(
        session.run(None, {"x": rows})[0], _torch_logits(sources, rows), rtol=1e-4, atol=1e-5
    )


def _forged(folder: Path, manifest: dict[str, Any], members: dict[str, bytes]) -> Path:
    path = folder / "forged.mar"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", json.dumps({"runtime": "python", "model": manifest}))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("manifest", "members", "fragments"),
    [
        (
            {"modelName": "m", "serializedFile": "../outside.pt"},
            {},
            ("model.serializedFile", "outside the archive"),
        ),
        (
            {"modelName": "m", "serializedFile": "/etc/passwd"},
            {},
            ("model.serializedFile", "outside the archive"),
        ),
        (
            {"modelName": "m", "serializedFile": "absent.pt"},
            {"other.pt": b"x"},
            ("model.serializedFile", "absent.pt"),
        ),
        ({"modelName": "m"}, {}, ("model.serializedFile", "missing")),
        (
            {"modelName": "m", "serializedFile": "w.pth", "modelFile": "../model.py"},
            {"w.pth": b"x"},
            ("model.modelFile", "outside the archive"),
        ),
        (
            {"modelName": "m", "serializedFile": "w.pth", "handler": "gone.py"},
            {"w.pth": b"x"},
            ("model.handler", "gone.py"),
        ),
    ],
    ids=[
        "dotdot",
        "absolute",
        "missing-member",
        "no-serialized-file",
        "model-file-outside",
        "missing-handler",
    ],
)
def test_a_manifest_that_points_wrong_is_refused_naming_the_field(
    tmp_path: Path, manifest: dict[str, Any], members: dict[str, bytes], fragments: tuple[str, ...]
) -> None:
    repository = tmp_path / "repo"
    mar = _forged(tmp_path, manifest, members)
    assert_one_line_error(run(mar, "--repository", repository, "--input", INPUT), "forged.mar", *fragments)
    assert_untouched(repository)


def test_a_truncated_or_foreign_archive_is_refused(sources: Path, tmp_path: Path) -> None:
    mar = archiver(
        sources, "whole", "--version", "1.0", "--serialized-file", "traced.pt", "--handler", "base_handler"
    )
    truncated = tmp_path / "truncated.mar"
    truncated.write_bytes(mar.read_bytes()[: mar.stat().st_size // 2])
    repository = tmp_path / "repo"
    assert_one_line_error(run(truncated, "-r", repository, "--input", INPUT), "truncated.mar", "zip")
    plain = tmp_path / "plain.mar"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("model.pt", b"x")
    assert_one_line_error(
        run(plain, "-r", repository, "--input", INPUT), "plain.mar", "MAR-INF/MANIFEST.json"
    )
    assert_untouched(repository)


def test_a_zip_bomb_is_refused_before_it_unpacks(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.mar"
    manifest = {"model": {"modelName": "bomb", "serializedFile": "model.pt", "handler": "base_handler"}}
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        with archive.open("model.pt", "w") as member:  # 96 MiB of zeros pack to about 100 kB
            for _ in range(96):
                member.write(bytes(1 << 20))
    assert bomb.stat().st_size < 1 << 20
    repository = tmp_path / "repo"
    line = assert_one_line_error(run(bomb, "-r", repository, "--input", INPUT), "bomb.mar", "'model.pt'")
    assert "refused as a zip bomb" in line
    assert_untouched(repository)


def test_the_input_spec_is_required(sources: Path, tmp_path: Path) -> None:
    mar = archiver(
        sources, "noinput", "--version", "1.0", "--serialized-file", "traced.pt", "--handler", "base_handler"
    )
    result = run(mar, "--repository", tmp_path / "repo")
    assert result.returncode != 0 and "--input" in result.stderr
