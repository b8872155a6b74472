"""The permutation tests that give each distance signal its uncertainty (``monitoring/permutation.py``):
each recomputes the very distance Evidently scores (its first row is the observed data, equal to
Evidently's score), p = (1 + #relabellings at least as far) / (999 + 1), seeded, and subsampled above
1,000 values a side (stated). Every draw here is seeded."""

from __future__ import annotations

import math
from typing import Any

import pytest


def _rng(seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed)


def _evidently(method: str, kind: str, ref: Any, cur: Any) -> float:
    from evidently.legacy.calculations.stattests import get_stattest

    return float(get_stattest(ref, cur, kind, method)(ref, cur, kind, 0.5).drift_score)


def test_the_wasserstein_test_recomputes_evidentlys_score_and_separates_shift_from_noise() -> None:
    import pandas as pd

    from twin_core.monitoring import permutation

    same = _rng(1).normal(1500, 200, 80)
    ref, cur = pd.Series(same[:40]), pd.Series(same[40:])
    noise = permutation.wasserstein(ref, cur)
    assert math.isclose(noise.statistic, _evidently("wasserstein", "num", ref, cur), rel_tol=1e-9)
    # p itself (0.456 with the NumPy of this writing) follows NumPy's random streams, which NumPy does not
    # promise to keep across versions: the behaviour is "not significant", and the same p on every run
    assert noise.p_value > 0.05 and (noise.permutations, noise.rows, noise.reference_rows) == (999, 40, 40)
    assert permutation.wasserstein(ref, cur) == noise  # seeded: the same data, the same p-value
    shifted = permutation.wasserstein(ref, cur + 400)
    assert shifted.p_value == 1 / 1000 and shifted.statistic > 1.5
    flat = permutation.wasserstein(pd.Series([3.0] * 30), pd.Series([3.0] * 30))  # no spread: floored norm
    assert (flat.statistic, flat.p_value) == (0.0, 1.0)


def test_above_1000_values_a_side_the_test_runs_on_a_seeded_subsample_it_states() -> None:
    import pandas as pd

    from twin_core.monitoring import permutation

    ref, cur = pd.Series(_rng(2).normal(0, 1, 5000)), pd.Series(_rng(3).normal(0.2, 1, 3000))
    outcome = permutation.wasserstein(ref, cur)
    assert (outcome.rows, outcome.reference_rows, outcome.p_value) == (1000, 1000, 0.001)
    assert outcome.details(0.05)["permuted_rows"] == [1000, 1000]


def test_the_category_test_recomputes_evidentlys_jensen_shannon() -> None:
    import pandas as pd

    from twin_core.monitoring import permutation

    ref = pd.Series(_rng(4).choice(["en", "de", "fr"], 30, p=[0.8, 0.1, 0.1]))
    cur = pd.Series(_rng(5).choice(["en", "de", "none"], 30, p=[0.6, 0.3, 0.1]))
    outcome = permutation.category_distance(ref, cur, "jensenshannon")
    assert math.isclose(outcome.statistic, _evidently("jensenshannon", "cat", ref, cur), rel_tol=1e-9)
    assert (round(outcome.statistic, 4), outcome.p_value) == (0.418, 0.002)
    one = permutation.category_distance(pd.Series(["en"] * 25), pd.Series(["en"] * 25), "jensenshannon")
    assert (one.statistic, one.p_value) == (0.0, 1.0)


@pytest.mark.parametrize("dist", ["cosine", "euclidean", "cityblock", "chebyshev"])
def test_the_embedding_test_recomputes_evidentlys_distance_between_mean_embeddings(dist: str) -> None:
    import pandas as pd
    from evidently.metrics.embeddings import DistanceDriftMethod

    from twin_core.monitoring import permutation

    ref = pd.DataFrame(_rng(6).normal(0.1, 1, (60, 16)).astype("float32"))
    cur = pd.DataFrame(_rng(7).normal(0.1, 1, (60, 16)).astype("float32"))
    score, _, _ = DistanceDriftMethod(dist=dist, threshold=0.3)(cur.copy(), ref.copy())
    noise = permutation.mean_embedding_distance(ref, cur, dist)
    assert math.isclose(noise.statistic, float(score), rel_tol=1e-5)  # Evidently averages in float32
    assert noise.p_value > 0.05 and (noise.rows, noise.reference_rows) == (60, 60)
    assert permutation.mean_embedding_distance(ref, cur + 0.8, dist).p_value == 0.001


def test_the_classifier_test_permutes_the_held_out_half_of_evidentlys_roc_auc() -> None:
    import pandas as pd
    from evidently.metrics.embeddings import ModelDriftMethod

    from twin_core.monitoring import permutation

    ref = pd.DataFrame(_rng(8).normal(0, 1, (80, 16)).astype("float32"))
    cur = pd.DataFrame(_rng(9).normal(0, 1, (80, 16)).astype("float32"))
    for current, significant in ((cur, False), (cur + 0.6, True)):
        score, _, _ = ModelDriftMethod(threshold=0.55)(current.copy(), ref.copy())
        outcome = permutation.classifier_auc(ref, current)
        assert math.isclose(outcome.statistic, float(score), rel_tol=1e-12)
        assert (outcome.p_value < 0.05) is significant and outcome.rows + outcome.reference_rows == 80


def test_another_distance_is_recomputed_with_its_evidently_stattest_on_a_smaller_sample() -> None:
    import pandas as pd
    from evidently.legacy.calculations.stattests import get_stattest

    from twin_core.monitoring import permutation

    ref, cur = pd.Series(_rng(10).normal(0, 1, 500)), pd.Series(_rng(11).normal(0, 1, 500))
    test = get_stattest(ref, cur, "num", "hellinger")
    outcome = permutation.generic(ref, cur, lambda r, c: test(r, c, "num", 0.1).drift_score)
    assert (outcome.rows, outcome.reference_rows, outcome.permutations) == (200, 200, 999)
    assert 1 / 1000 <= outcome.p_value <= 1 and outcome.p_value > 0.05


def test_details_state_the_p_value_its_permutations_and_the_decision_in_words() -> None:
    from twin_core.monitoring.permutation import Permuted

    assert Permuted(0.012, 999, 40, 38, 1.4).details(0.05) == {
        "p_value": 0.012,
        "permutations": 999,
        "permuted_rows": [40, 38],
        "detail": "permutation test: p = 0.0120 (999 permutations of 40 and 38 values; significant at alpha 0.05)",
    }
