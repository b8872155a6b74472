"""A Great Expectations suite on each dataset: non-empty fields, lengths, uniqueness, disjoint splits
and no PII pattern. Failing rows are kept apart with their reasons; Data Docs go to the artifact store.
"""

from __future__ import annotations

import os
from typing import Any

from twin_core.errors import InputError
from twin_core.validation.gx_results import failing_rows, run_suite

PII_PATTERNS = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",  # e-mail
    r"(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b",  # phone number (dates and years do not match)
]
TEXT_COLUMNS = {"instruct": ("instruction", "answer"), "preference": ("instruction", "chosen", "rejected")}


def _suite(kind: str, min_answer_chars: int) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"dataset_{kind}")
    cols = TEXT_COLUMNS[kind]
    answer = "answer" if kind == "instruct" else "chosen"
    exps = [gxe.ExpectColumnValuesToBeUnique(column="id", meta={"reason": "id not unique"})]
    for col in cols:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col, meta={"reason": f"{col} missing"}))
        exps.append(gxe.ExpectColumnValueLengthsToBeBetween(column=col, min_value=1, meta={"reason": f"{col} empty"}))
    exps += [
        gxe.ExpectColumnValueLengthsToBeBetween(
            column=answer, min_value=min_answer_chars, meta={"reason": f"{answer} shorter than {min_answer_chars}"}
        ),
        gxe.ExpectColumnValuesToBeUnique(column="instruction_answer", meta={"reason": "duplicate sample"}),
        gxe.ExpectColumnValuesToBeInSet(
            column="document_in_both_splits", value_set=[False], meta={"reason": "document in both splits"}
        ),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"], meta={"reason": "bad split"}),
        gxe.ExpectColumnValuesToNotMatchRegexList(
            column=answer, regex_list=PII_PATTERNS, meta={"reason": "PII pattern"}
        ),
    ]
    for e in exps:
        suite.add_expectation(e)
    return suite


def validate(kind: str, rows: list[dict[str, Any]], *, min_answer_chars: int) -> tuple[dict[str, list[str]], Any, bool]:
    """(row id -> reasons, the GX context (for Data Docs), overall success)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import pandas as pd

    if not rows:
        raise InputError(f"{kind} dataset is empty: nothing to validate")
    frame = pd.DataFrame(rows)
    splits_of_doc = frame.groupby("document_id")["split"].nunique()
    frame["document_in_both_splits"] = frame["document_id"].map(splits_of_doc) > 1
    answer = "answer" if kind == "instruct" else "chosen"
    frame["instruction_answer"] = frame["instruction"] + "\x00" + frame[answer]
    if kind == "preference":  # one prompt and chosen text may be paired with several rejected answers
        frame["instruction_answer"] += "\x00" + frame["rejected"]
    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("datasets")
    result = run_suite(context, source, f"dataset_{kind}", _suite(kind, min_answer_chars), frame)
    reasons = failing_rows(result)
    return reasons, context, bool(result.success)
