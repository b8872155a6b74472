"""Expectation suites per category (Great Expectations 1.x expectation classes).

Each expectation carries a short ``reason`` in its ``meta``: a document failing it is quarantined
with that reason.
"""

from __future__ import annotations

from typing import Any

from twin_core.domain.challenge import BLOCKED_TEXT_PATTERNS
from twin_core.domain.documents import Category
from twin_core.settings import Settings

KNOWN_PLATFORMS = ["medium", "substack", "blog", "linkedin", "github", "git"]
LINK_REGEX = r"^(?:https?://[^\s/?#]+[^\s]*|file:///[^\s]+)$"
MAX_CONTENT_BYTES = 15_000_000  # below MongoDB's 16 MB document limit


def build_suite(category: Category, settings: Settings, known_authors: list[str]) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def meta(reason: str) -> dict[str, str]:
        return {"reason": reason}

    suite = gx.ExpectationSuite(name=f"raw_{category.value}")
    expectations = [
        gxe.ExpectColumnValuesToBeBetween(
            column="text_length",
            min_value=settings.validation.min_chars,
            max_value=settings.validation.max_chars,
            meta=meta(f"text length outside [{settings.validation.min_chars}, {settings.validation.max_chars}]"),
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="link", meta=meta("link missing")),
        gxe.ExpectColumnValuesToBeUnique(column="link", meta=meta("link not unique")),
        gxe.ExpectColumnValuesToMatchRegex(column="link", regex=LINK_REGEX, meta=meta("link malformed")),
        gxe.ExpectColumnValuesToNotBeNull(column="author_id", meta=meta("author missing")),
        gxe.ExpectColumnValuesToBeInSet(column="author_id", value_set=known_authors, meta=meta("author unknown")),
        gxe.ExpectColumnValuesToBeInSet(column="platform", value_set=KNOWN_PLATFORMS, meta=meta("platform unknown")),
        gxe.ExpectColumnValuesToBeBetween(
            column="content_bytes", min_value=1, max_value=MAX_CONTENT_BYTES, meta=meta("content size out of bounds")
        ),
    ]
    if category is not Category.REPOSITORIES:  # prose only: code has no natural language nor login walls
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column="language", meta=meta("language not detected")),
            gxe.ExpectColumnValuesToNotMatchRegexList(
                column="text",
                regex_list=[f"(?i)(?:{p})" for p in BLOCKED_TEXT_PATTERNS],
                meta=meta("challenge or login-wall text"),
            ),
        ]
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite
