"""The sentiment model's tokenizer: a word vocabulary saved as ``vocabulary.json`` beside ``config.yaml``.

A sentence becomes a fixed-length row of token ids: lower-case it, strip punctuation, split on whitespace, map
each word to its id (unknown words to ``OOV_ID``), truncate or pad with ``PADDING_ID`` to ``sequence_length``.
Training and every client use this one class, so what the model was trained on is what it is served. The
conventions (id 0 pads, id 1 is ``[UNK]``) are those of Keras' ``TextVectorization``.

The file format (``"format": "modelport.vocabulary/1"``)::

    {"format": "modelport.vocabulary/1", "sequence_length": 16, "padding_id": 0, "oov_id": 1,
     "standardize": "lower_and_strip_punctuation", "split": "whitespace", "tokens": ["", "[UNK]", "the", ...]}
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["FORMAT", "OOV_ID", "OOV_TOKEN", "PADDING_ID", "Vocabulary"]

FORMAT = "modelport.vocabulary/1"
PADDING_ID = 0
OOV_ID = 1
OOV_TOKEN = "[UNK]"
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def _words(sentence: str) -> list[str]:
    return _PUNCTUATION.sub("", sentence.lower()).split()


@dataclass(frozen=True)
class Vocabulary:
    """Token list (index = id) and the fixed row length the model takes."""

    tokens: tuple[str, ...]
    sequence_length: int

    def __post_init__(self) -> None:
        if self.tokens[:2] != ("", OOV_TOKEN):
            raise ValueError(f"a vocabulary starts with the padding token '' and {OOV_TOKEN!r}")
        if self.sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1, not {self.sequence_length}")

    @classmethod
    def build(cls, sentences: Iterable[str], *, sequence_length: int, max_tokens: int = 2000) -> Vocabulary:
        """The ``max_tokens`` most frequent words of ``sentences`` (ties in alphabetical order)."""
        counts = Counter(word for sentence in sentences for word in _words(sentence))
        ranked = sorted(counts, key=lambda word: (-counts[word], word))
        return cls(("", OOV_TOKEN, *ranked[: max_tokens - 2]), sequence_length)

    @property
    def size(self) -> int:
        """The number of ids, including padding and ``[UNK]``: the embedding's input dimension."""
        return len(self.tokens)

    def encode(self, sentences: Sequence[str]) -> npt.NDArray[np.int32]:
        """Token ids, shape ``[len(sentences), sequence_length]``, int32."""
        index = {token: i for i, token in enumerate(self.tokens)}
        rows = np.full((len(sentences), self.sequence_length), PADDING_ID, dtype=np.int32)
        for row, sentence in enumerate(sentences):
            ids = [index.get(word, OOV_ID) for word in _words(sentence)][: self.sequence_length]
            rows[row, : len(ids)] = ids
        return rows

    def save(self, path: Path) -> None:
        """Write the vocabulary as JSON (the format in this module's docstring)."""
        document = {
            "format": FORMAT,
            "sequence_length": self.sequence_length,
            "padding_id": PADDING_ID,
            "oov_id": OOV_ID,
            "standardize": "lower_and_strip_punctuation",
            "split": "whitespace",
            "tokens": list(self.tokens),
        }
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a file written by :meth:`save`; a file of another format raises ``ValueError`` naming it."""
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{path} is not a vocabulary file (expected 'format': {FORMAT!r})")
        return cls(tuple(document["tokens"]), int(document["sequence_length"]))
