"""The recipes' data pieces: seeded generators and the sentiment tokenizer the clients share with training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from examples import datasets, sentences
from examples.vocabulary import OOV_ID, PADDING_ID, Vocabulary


def test_sentences_are_reproducible_and_balanced() -> None:
    first, again = sentences.generate(500, seed=3), sentences.generate(500, seed=3)
    assert first.sentences == again.sentences
    np.testing.assert_array_equal(first.labels, again.labels)
    assert sentences.generate(500, seed=4).sentences != first.sentences
    assert 0.4 < first.labels.mean() < 0.6


def test_vocabulary_encodes_like_textvectorization() -> None:
    vocabulary = Vocabulary.build(["the film was great", "The film was BAD!"], sequence_length=5)
    assert vocabulary.tokens[:4] == ("", "[UNK]", "film", "the")  # by frequency, then alphabetically
    ids = {token: index for index, token in enumerate(vocabulary.tokens)}
    encoded = vocabulary.encode(["The film, was superb!", "great great great great great great"])
    assert encoded.dtype == np.int32 and encoded.shape == (2, 5)
    assert encoded[0].tolist() == [ids["the"], ids["film"], ids["was"], OOV_ID, PADDING_ID]
    assert encoded[1].tolist() == [ids["great"]] * 5  # truncated to sequence_length


def test_vocabulary_round_trips_and_refuses_other_files(tmp_path: Path) -> None:
    vocabulary = Vocabulary.build(sentences.generate(200, seed=0).sentences, sequence_length=20)
    vocabulary.save(tmp_path / "vocabulary.json")
    assert Vocabulary.load(tmp_path / "vocabulary.json") == vocabulary
    (tmp_path / "other.json").write_text('{"tokens": []}')
    with pytest.raises(ValueError, match=r"other\.json is not a vocabulary file"):
        Vocabulary.load(tmp_path / "other.json")


def test_digit_split_is_fixed_by_its_seed() -> None:
    split, again = datasets.digits(), datasets.digits()
    assert split.train_x.shape[1:] == (1, 8, 8) and len(split.train_x) + len(split.validation_x) == 1797
    np.testing.assert_array_equal(split.validation_y, again.validation_y)
    assert split.train_x.min() >= 0.0 and split.train_x.max() <= 1.0


def test_waveforms_cover_every_class() -> None:
    signals, labels = datasets.waveforms(400, seed=0)
    assert signals.shape == (400, datasets.WAVEFORM_LENGTH, 1) and signals.dtype == np.float32
    assert set(labels.tolist()) == set(range(len(datasets.WAVEFORM_LABELS)))


def test_digits_sample_is_the_recipes_held_out_split() -> None:
    # The shipped .npz (read with numpy alone, as the serving environment does) is exactly the first 100
    # held-out digits of the split the recipes were validated on.
    images, labels = datasets.digits_sample()
    split = datasets.digits()
    assert images.shape == (100, 1, 8, 8) and images.dtype == np.float32
    np.testing.assert_array_equal(images, split.validation_x[:100])
    np.testing.assert_array_equal(labels, split.validation_y[:100])
