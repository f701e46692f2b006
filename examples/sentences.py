"""A synthetic but realistic corpus of review sentences labelled negative (0) or positive (1).

Sentences are built from templates and word lists ("The battery was not very reliable.", "I would really
recommend this phone!"), with intensifiers, negations that flip the label ("not bad" is positive), mixed case
and punctuation. The same seed always gives the same sentences, so the held-out split can be regenerated
anywhere (the tests do) without shipping it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LABELS", "TRAIN_SEED", "VALIDATION_SEED", "VALIDATION_SIZE", "Corpus", "generate"]

LABELS: tuple[str, ...] = ("negative", "positive")
TRAIN_SEED = 0
VALIDATION_SEED = 1
VALIDATION_SIZE = 1000

_SUBJECTS = (
    "the movie", "this film", "the acting", "the plot", "the soundtrack", "the ending", "this phone",
    "the battery", "the screen", "the camera", "the service", "the staff", "the food", "the hotel room",
    "the delivery", "this laptop", "the price", "the book", "the app", "the latest update", "the keyboard",
    "the coffee", "the hotel", "the waiter", "the game",
)  # fmt: skip
_VERBS = ("was", "is", "seemed", "felt", "looks", "turned out to be")
_POSITIVE = (
    "great", "excellent", "wonderful", "fantastic", "amazing", "good", "lovely", "superb", "brilliant",
    "enjoyable", "delightful", "impressive", "solid", "reliable", "friendly", "fast", "comfortable",
    "beautiful", "perfect", "pleasant", "helpful", "outstanding", "fun", "charming",
)  # fmt: skip
_NEGATIVE = (
    "terrible", "awful", "bad", "horrible", "disappointing", "boring", "poor", "dreadful", "slow", "rude",
    "broken", "useless", "mediocre", "annoying", "ugly", "noisy", "overpriced", "confusing", "unreliable",
    "painful", "dull", "frustrating", "bland", "clumsy",
)  # fmt: skip
_INTENSIFIERS = (
    "",
    "",
    "",
    "very",
    "really",
    "extremely",
    "quite",
    "so",
    "incredibly",
    "absolutely",
    "pretty",
)
_LIKE_POSITIVE = ("loved", "enjoyed", "liked", "adored", "appreciated")
_LIKE_NEGATIVE = ("hated", "disliked", "regretted", "could not stand", "was annoyed by")
_OPENERS = ("", "", "", "honestly ", "overall ", "to be honest ", "well ", "sadly ", "frankly ")
_ENDINGS = (".", ".", "!", "", "!!", "...")


@dataclass(frozen=True, slots=True)
class Corpus:
    """Sentences and their labels (0 negative, 1 positive), in the same order."""

    sentences: list[str]
    labels: np.ndarray  # int64, shape [len(sentences)]


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _clause(rng: np.random.Generator, positive: bool, template: int) -> str:
    """One clause of the given polarity: describing (0), liking (1) or recommending (2) its subject."""
    negated = rng.random() < 0.3
    # A negation flips the meaning of the word it precedes, so pick the word of the opposite polarity.
    word_is_positive = positive != negated
    subject = _pick(rng, _SUBJECTS)
    if template == 0:
        adjective = _pick(rng, _POSITIVE if word_is_positive else _NEGATIVE)
        intensifier = _pick(rng, _INTENSIFIERS)
        parts = [subject, _pick(rng, _VERBS), "not" if negated else "", intensifier, adjective]
    elif template == 1:
        if negated:
            verb = _pick(rng, ("like", "enjoy", "love") if word_is_positive else ("hate", "mind", "regret"))
            parts = ["i", _pick(rng, ("did not", "really did not", "do not")), verb, subject]
        else:
            verb = _pick(rng, _LIKE_POSITIVE if word_is_positive else _LIKE_NEGATIVE)
            parts = ["i", _pick(rng, ("", "really", "truly")), verb, subject]
    else:
        if negated:
            phrase = "would not recommend" if word_is_positive else "would not hesitate to recommend"
        else:
            phrase = "would recommend" if word_is_positive else "would stay away from"
        tails = ("", "at all") if negated and word_is_positive else ("", "to anyone", "to my friends")
        parts = ["i", phrase, subject, _pick(rng, tails if phrase != "would stay away from" else ("",))]
    return " ".join(part for part in parts if part)


def _sentence(rng: np.random.Generator) -> tuple[str, int]:
    """One sentence and its label. A fifth are contrasts whose label is the second clause's:
    "the screen was great, but the battery was awful" is negative."""
    positive = bool(rng.integers(2))
    if rng.random() < 0.2:
        conceded, meant = _clause(rng, not positive, 0), _clause(rng, positive, int(rng.integers(3)))
        text = f"{conceded}, but {meant}" if rng.random() < 0.7 else f"although {conceded}, {meant}"
    else:
        text = _clause(rng, positive, int(rng.integers(3)))
    text = (_pick(rng, _OPENERS) + text + _pick(rng, _ENDINGS)).strip()
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:].replace(" i ", " I ")
    return text, int(positive)


def generate(count: int, *, seed: int) -> Corpus:
    """``count`` labelled sentences; the same ``seed`` gives the same corpus on every machine."""
    rng = np.random.default_rng(seed)
    pairs = [_sentence(rng) for _ in range(count)]
    return Corpus([text for text, _ in pairs], np.array([label for _, label in pairs], dtype=np.int64))
