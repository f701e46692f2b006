"""How positive is this sentence? Ask the served ``sentiment`` model over HTTP with ``tritonclient``.

Start the server first (``make serve`` serves ``models/`` on :8000), then::

    python -m examples.client_http "The hotel was wonderful!" "I would not recommend this phone."

The sentences are tokenized on the client with the vocabulary saved beside the model
(``models/sentiment/vocabulary.json``), exactly as in training; the server sees int32 token ids.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

from examples.vocabulary import Vocabulary

__all__ = ["MODEL", "positive_probabilities"]

MODEL = "sentiment"
MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / MODEL


def positive_probabilities(
    url: str, sentences: Sequence[str], *, vocabulary: Vocabulary, labels: Sequence[str]
) -> list[float]:
    """The probability of ``positive`` for each sentence, from one batched request to ``url`` (host:port)."""
    tokens = vocabulary.encode(sentences)
    request = httpclient.InferInput("tokens", list(tokens.shape), "INT32")
    request.set_data_from_numpy(tokens)
    with httpclient.InferenceServerClient(url) as client:
        result = client.infer(MODEL, [request], outputs=[httpclient.InferRequestedOutput("probabilities")])
    probabilities = np.asarray(result.as_numpy("probabilities"))
    return [float(p) for p in probabilities[:, list(labels).index("positive")]]


def main() -> None:
    """Print ``P(positive)  label  sentence`` for each sentence on the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sentences", nargs="+")
    parser.add_argument("--url", default="127.0.0.1:8000", help="the server's HTTP host:port")
    parser.add_argument(
        "--model-dir", type=Path, default=MODEL_DIR, help="holds vocabulary.json and labels.txt"
    )
    arguments = parser.parse_args()
    vocabulary = Vocabulary.load(arguments.model_dir / "vocabulary.json")
    labels = (arguments.model_dir / "labels.txt").read_text(encoding="utf-8").split()
    scores = positive_probabilities(arguments.url, arguments.sentences, vocabulary=vocabulary, labels=labels)
    for sentence, positive in zip(arguments.sentences, scores, strict=True):
        print(f"{positive:6.3f}  {'positive' if positive >= 0.5 else 'negative':<8}  {sentence}")


if __name__ == "__main__":
    main()
