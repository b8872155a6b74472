"""Burrows' Delta (evaluation.stylometry) on small fixed texts, values computed by hand."""

import math

import pytest

from twin_core.evaluation.stylometry import style_distance, tokens

# Two habits on the same topics: A writes "the ... of the ... and", B writes "which is ... if it is".
A = [
    "The cat sat on the mat and the dog sat by the door of the house in the evening.",
    "The rain fell on the roof of the barn, and the wind blew in the trees of the hill.",
    "The light of the moon lay on the field and the river ran down to the sea.",
]
B = [
    "Which is why, if you ask me, it is not so much a question of the cat as it is a habit.",
    "If it is late, it is not because we are slow but because it is hard, which is fine.",
    "So it is, and if not, then it is what it is, which is to say not much about the sea.",
]


def test_tokens_lowercase_words_keep_apostrophes() -> None:
    assert tokens("Don't stop: It's 3 AM!") == ["don't", "stop", "it's", "am"]


def test_style_distance_by_hand() -> None:
    # reference "a a b" / "a b b": mean 1/2 each, std (ddof=1) sqrt(2)/6; texts 3/4 a, 1/4 b:
    # z = +-(1/4)/(sqrt(2)/6) = 3/(2 sqrt(2)) for both words, so the Delta is that value.
    assert style_distance(["a a a b"], ["a a b", "a b b"]) == pytest.approx(3 / (2 * math.sqrt(2)), abs=1e-12)
    # the profile itself (pooled half/half) is at distance 0
    assert style_distance(["a b", "b a"], ["a a b", "a b b"]) == pytest.approx(0.0, abs=1e-12)


def test_style_distance_is_closer_for_the_same_author() -> None:
    own, other = style_distance(A[:1], A[1:] + A[:1]), style_distance(B[:1], A[1:] + A[:1])
    assert own < other
    assert style_distance(B[:1], B) < style_distance(A[:1], B)


def test_style_distance_needs_two_reference_documents_and_words() -> None:
    with pytest.raises(ValueError, match="two reference documents"):
        style_distance(["a b"], ["a b", "   "])
    with pytest.raises(ValueError, match="no words"):
        style_distance(["", "42"], A)
    with pytest.raises(ValueError, match="do not differ"):
        style_distance(["a b"], ["a b", "b a"])
