"""Author attribution (evaluation.attribution): naive Bayes by hand on tiny texts, then its accuracy on the
two sample authors' held-out writing, the figure an attribution share is read against."""

import json
from pathlib import Path

import pytest

from twin_core.evaluation.attribution import calibration, fit_attributor, snippets, tokens


def test_tokens_keep_punctuation_and_apostrophes() -> None:
    assert tokens("Don't stop; it's 3 AM — (really)!") == [
        "don't", "stop", ";", "it's", "3", "am", "\u2014", "(", "really", ")", "!",
    ]  # fmt: skip


def test_vocabulary_is_what_every_author_uses() -> None:
    # "c" is x's alone (a topic, not a habit); a and b are used by both, 3 times each: alphabetical
    assert fit_attributor({"x": ["a a b c"], "y": ["a b b"]}).vocab == ["a", "b"]


def test_predict_by_hand() -> None:
    # add-one smoothing over [a, b, other]: x = (3/6, 2/6, 1/6), y = (2/6, 3/6, 1/6), equal priors
    attributor = fit_attributor({"y": ["a b b"], "x": ["a a b"]})
    assert attributor.authors == ["x", "y"]
    assert attributor.predict(["a a b", "b", "b b a z", "", "   "]) == ["x", "y", "y", "", ""]
    assert attributor.predict([]) == []
    assert attributor.predict(["", "\u00e9\u00e9 \u2026"]) == ["", ""]  # no token at all: nobody's


def test_needs_two_authors_with_text() -> None:
    with pytest.raises(ValueError, match="two authors"):
        fit_attributor({"x": ["a b"], "y": ["", "   "]})


def test_snippets_are_whole_runs_of_words() -> None:
    assert snippets(["a b c d e", "f g", "h i j k"], 2) == ["a b", "c d", "f g", "h i", "j k"]


def _prose(folder: Path) -> tuple[list[str], list[str]]:
    """Articles and posts by link; every 6th document held out (the datasets' 1 in 6)."""
    docs = sorted(
        (d for kind in ("ArticleDocument", "PostDocument") for d in json.loads((folder / f"{kind}.json").read_text())),
        key=lambda d: d["link"],
    )
    texts = [" ".join(v for v in d["content"].values() if isinstance(v, str)) for d in docs]
    return [t for i, t in enumerate(texts) if i % 6], [t for i, t in enumerate(texts) if i % 6 == 0]


def test_calibration_on_the_sample_authors_held_out_writing(sample_dir: Path) -> None:
    """Fitted on 23 and 21 documents, the measure attributes 36-word pieces of the 5 + 5 documents it never
    saw to their author 91 % and 89 % of the time: a twin's share can be read against that ceiling."""
    ada_train, ada_test = _prose(sample_dir)
    oskar_train, oskar_test = _prose(sample_dir / "second_author")
    attributor = fit_attributor({"ada": ada_train, "oskar": oskar_train})
    assert (len(ada_train), len(oskar_train)) == (23, 21)
    assert calibration(attributor, {"ada": ada_test, "oskar": oskar_test}, 36) == {
        "words": 36,
        "accuracy": 0.8984,
        "authors": {
            "ada": {"snippets": 45, "correct": 41, "accuracy": 0.9111, "ci95": [0.7927, 0.9649]},
            "oskar": {"snippets": 35, "correct": 31, "accuracy": 0.8857, "ci95": [0.7405, 0.9546]},
        },
    }
    assert calibration(attributor, {"ada": ada_test}, 36)["accuracy"] is None  # no snippets of Oskar: unknown


def test_the_evaluate_log_line_puts_the_share_beside_the_measures_accuracy() -> None:
    from twin_core.cli.evaluate import attribution_summary

    stylometry = {
        "attribution_share": {"candidate": 0.55, "baseline": 0.6},
        "attribution_rows": {"candidate": 20, "baseline": 20},
        "attribution_ci95": {"candidate": [0.3421, 0.7418], "baseline": None},
        "attribution_calibration": {
            "words": 43,
            "accuracy": 0.8902,
            "authors": {"ada": {"correct": 62, "snippets": 71}, "oskar": {"correct": 39, "snippets": 43}},
        },
    }
    assert attribution_summary(stylometry) == (
        "answers attributed to the author: candidate 55% of 20 (95 % CI 34%-74%), baseline 60% of 20; "
        "the measure on held-out writing at 43 words: 89% (ada 62/71, oskar 39/43)"
    )
    assert attribution_summary({"attribution_share": None}) is None  # one author: nothing to attribute
