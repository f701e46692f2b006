"""A repository for the console's tests: a labelled classifier with a conversion report, a token model with a
vocabulary, an image-shaped identity, and a model that fails to load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.onnx_models import identity_model, mlp_model, write_corrupt_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

TOKEN = "s3cret"

LABELS = [f"class-{i}" for i in range(10)]
VOCABULARY = {
    "format": "modelport.vocabulary/1",
    "sequence_length": 6,
    "padding_id": 0,
    "oov_id": 1,
    "standardize": "lower_and_strip_punctuation",
    "split": "whitespace",
    "tokens": ["", "[UNK]", "the", "cat", "sat", "<b>bold</b>"],
}
# The parity table's shape as converters' report writes it (converters/report.py).
REPORT = {
    "name": "classifier",
    "version": 1,
    "note": "<img src=x onerror=window.pwned=1>",  # shown as text, never as markup
    "verification": {
        "atol": 0.0001,
        "outputs": [
            {"output": "probabilities", "batch_size": 1, "max_abs_error": 2.4e-07, "passed": True},
            {"output": "probabilities", "batch_size": 7, "max_abs_error": 3.1e-07, "passed": True},
        ],
    },
}


@pytest.fixture(scope="package")
def console_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console-repo")
    write_model(
        root,
        "classifier",
        mlp_model(),
        config={
            "max_batch_size": 8,
            "inputs": [{"name": "features", "datatype": "FP32", "dims": [16]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "dims": [10], "labels": "labels.txt"}],
        },
    )
    (root / "classifier" / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (root / "classifier" / "1" / "conversion.json").write_text(json.dumps(REPORT))
    write_model(root, "tokens", identity_model("INT32", (-1, 6)))
    (root / "tokens" / "vocabulary.json").write_text(json.dumps(VOCABULARY))
    write_model(root, "picture", identity_model("FP32", (-1, 1, 8, 8)))
    write_corrupt_model(root, "broken")
    return root


@pytest.fixture(scope="package")
def server(console_repository: Path) -> Iterator[ServerProcess]:
    """The server the console tests share (no management token: management from loopback only)."""
    with start_server(console_repository) as running:
        yield running


@pytest.fixture(scope="package")
def token_server(console_repository: Path) -> Iterator[ServerProcess]:
    """A server with the management token :data:`TOKEN`."""
    with start_server(console_repository, "--management-token", TOKEN) as running:
        yield running
