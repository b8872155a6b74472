"""``twin monitor drift --plots`` (evidently_metrics.value_report): the Evidently report gets the text
descriptors the signals' own computation made (length, out-of-vocabulary share, language), each computed
once, and gives the very scores and p-values of the default path (``value_scores``). Stand-in tools: no
model is loaded; fixed texts and values, seeded permutation tests: no luck."""

from __future__ import annotations

from typing import Any

import pytest

QUERY_SIGNALS = ("query_length", "query_oov_share", "query_language")
OPERATION_SIGNALS = ("retrieval_score", "latency_ms")


def _signals(names: tuple[str, ...]) -> list[Any]:
    from twin_core.monitoring.config import DEFAULTS, _signal

    return [_signal(name, DEFAULTS[name], "test") for name in names]


def _tools(detected: list[str]) -> Any:
    import numpy as np

    from twin_core.monitoring import TextTools

    def language(text: str) -> str | None:
        detected.append(text)
        return "en" if " the " in f" {text} " else "de" if "der" in text else None

    vocabulary = frozenset({"the", "cat", "sat", "on", "mat", "how", "do", "index"})
    return TextTools(embed=lambda texts: np.ones((len(texts), 8)), language=language, vocabulary=vocabulary)


def _queries() -> Any:
    import pandas as pd

    from twin_core.monitoring.measures import ScopeData

    # 40 queries a side, each text repeated (the same question asked again), some without any known word
    current = [f"how do I build the index {i % 8}" if i % 3 else f"wie baue ich der index {i % 5}" for i in range(40)]
    reference = [f"the cat sat on the mat {i % 6}" if i % 4 else "???" for i in range(40)]
    return ScopeData("queries", "previous", pd.DataFrame({"query": current}), pd.DataFrame({"query": reference}))


def _comparable(measures: dict[str, Any]) -> dict[str, Any]:
    return {name: (m.rows, m.reference_rows, m.score, m.held, m.details) for name, m in measures.items()}


def test_the_report_detects_each_distinct_text_once_and_scores_as_the_default_path() -> None:
    from twin_core.monitoring.evidently_metrics import value_report, value_scores

    data, detected = _queries(), []
    snapshot, found = value_report(_signals(QUERY_SIGNALS), data, _tools(detected), minimum=20)
    texts = {*data.current["query"], *data.reference["query"]}
    assert sorted(detected) == sorted(texts)  # once each: not once for Evidently and again for the p-values
    columns = {m["config"]["column"] for m in snapshot.dict()["metrics"]}
    assert columns == {"query_length", "query_oov", "query_language"}  # the descriptors: column and kind
    default = value_scores(_signals(QUERY_SIGNALS), data, _tools([]), minimum=20)
    assert _comparable(found) == _comparable(default)
    assert all(m.score is not None and "p_value" in m.details for m in found.values())


@pytest.mark.parametrize("missing", [0, 7])
def test_plain_columns_with_missing_values_score_as_the_default_path(missing: int) -> None:
    import math

    import pandas as pd

    from twin_core.monitoring.evidently_metrics import value_report, value_scores
    from twin_core.monitoring.measures import ScopeData

    def frame(shift: float) -> Any:
        score = [math.nan if i < missing else 0.5 + shift + (i % 9) / 20 for i in range(40)]
        return pd.DataFrame({"retrieval_score": score, "latency_ms": [100.0 + 40 * shift * (i % 5) for i in range(40)]})

    data = ScopeData("operations", "previous", frame(0.3), frame(0.0))
    _, found = value_report(_signals(OPERATION_SIGNALS), data, _tools([]), minimum=20)
    default = value_scores(_signals(OPERATION_SIGNALS), data, _tools([]), minimum=20)
    assert _comparable(found) == _comparable(default)
    assert found["retrieval_score"].rows == 40 - missing and found["retrieval_score"].score is not None
