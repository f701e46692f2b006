"""The example clients against the real server serving the committed ``models/``, over HTTP and gRPC."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from examples import datasets
from examples.client_grpc import read_digits
from examples.client_http import positive_probabilities
from examples.vocabulary import Vocabulary
from tests.helpers.server_process import ServerProcess, start_server

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server(MODELS) as running:
        yield running


def test_http_client_scores_sentences(server: ServerProcess) -> None:
    vocabulary = Vocabulary.load(MODELS / "sentiment" / "vocabulary.json")
    labels = (MODELS / "sentiment" / "labels.txt").read_text(encoding="utf-8").split()
    sentences = ["The staff was really friendly!", "the battery was not very reliable.", "I loved the coffee"]
    scores = positive_probabilities(server.http_url, sentences, vocabulary=vocabulary, labels=labels)
    assert len(scores) == 3 and all(0.0 <= score <= 1.0 for score in scores)
    assert scores[0] > 0.5 and scores[1] < 0.5 and scores[2] > 0.5


@pytest.mark.parametrize("model", ["digits", "mlp"])
def test_grpc_client_reads_digits(server: ServerProcess, model: str) -> None:
    images, truth = datasets.digits_sample()
    images, truth = images[:40], truth[:40]
    read = read_digits(server.grpc_url, images, model=model)
    assert len(read) == 40
    assert np.mean(np.array(read) == truth) >= 0.9


# What make serve's environment lacks: the client scripts must run without them.
_NOT_IN_SERVE_ENVIRONMENT = ("sklearn", "scipy", "torch", "tensorflow", "keras", "onnx", "tf2onnx")


@pytest.mark.parametrize(
    ("module", "arguments", "printed"),
    [
        ("examples.client_grpc", ("--count", "8"), "/8 correct"),
        ("examples.client_http", ("The hotel was wonderful!",), "positive"),
    ],
)
def test_client_scripts_run_without_the_training_packages(
    server: ServerProcess, module: str, arguments: tuple[str, ...], printed: str
) -> None:
    url = server.grpc_url if module.endswith("grpc") else server.http_url
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in _NOT_IN_SERVE_ENVIRONMENT)
    script = f"import runpy, sys; {blocked}; runpy.run_module({module!r}, run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments, "--url", url],
        cwd=MODELS.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert printed in result.stdout
