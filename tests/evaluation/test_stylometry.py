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


def test_style_comparison_is_the_three_measures_on_one_profile() -> None:
    from twin_core.evaluation.stylometry import style_comparison, style_difference_interval

    distances_and_interval = (style_distance(A[:2], B), style_distance(A[2:] + B[:1], B))
    expected = (*distances_and_interval, style_difference_interval(A[:2], A[2:] + B[:1], B, resamples=200))
    assert style_comparison(A[:2], A[2:] + B[:1], B, resamples=200) == expected


@pytest.mark.parametrize(
    ("texts", "other", "reference", "message"),
    [
        (A, B, ["a b", "   "], "style_distance needs at least two reference documents"),
        (["42"], B, A, "style_distance: no words in the texts to measure"),  # the first side's Delta
        (B, ["", "42"], A, "style_distance: no words in the texts to measure"),  # the second side's Delta
        (B[:1], ["", "42"], A, "style_distance: no words in the texts to measure"),  # a Delta before the interval
        (B[:1], B, A, "style interval: 1 text(s) with words on a side, fewer than 2"),  # the first side: 1 text
        (B, ["The cat.", "42", ""], A, "style interval: 1 text(s) with words on a side, fewer than 2"),
        (B[:2] + ["", "42"], ["The cat."], A, "style interval: 1 text(s) with words on a side, fewer than 2"),
    ],
)
def test_style_comparison_raises_the_error_the_three_measures_raised_first(
    texts: list[str], other: list[str], reference: list[str], message: str
) -> None:
    from twin_core.evaluation.stylometry import style_comparison, style_difference_interval

    def first_error() -> str:
        try:
            style_distance(texts, reference)
            style_distance(other, reference)
            style_difference_interval(texts, other, reference, resamples=200)
        except ValueError as exc:
            return str(exc)
        return ""

    assert first_error().startswith(message)
    with pytest.raises(ValueError) as raised:
        style_comparison(texts, other, reference, resamples=200)
    assert str(raised.value) == first_error()
