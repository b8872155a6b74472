"""Code stays code: an article's <pre> block keeps its lines and indentation in the raw document
(newspaper4k alone flattens it onto one line), because the datasets teach the twin the author's code."""

from __future__ import annotations

import pytest

from twin_core.domain.documents import UserDocument
from twin_core.etl.crawlers.article import ArticleCrawler
from twin_core.etl.crawlers.base import CrawlContext
from twin_core.etl.extract import restore_code
from twin_core.etl.http import HttpClient

CODE = """def write_partition(rows, day):
    path = ROOT / f"day={day}"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\\n")
    tmp.replace(path)  # atomic: readers see the old file or the new one"""


@pytest.fixture
def ctx(crawl_settings):
    user = UserDocument.from_full_name("Ada Quillfeather")
    return CrawlContext(settings=crawl_settings, http=HttpClient(crawl_settings), user=user)


def test_crawled_article_keeps_the_lines_of_its_code_block(ctx, site) -> None:
    [doc] = ArticleCrawler().crawl(f"{site.base_url}/code.html", ctx)
    text = doc.content["Content"]
    assert f"```\n{CODE}\n```" in text
    assert text.startswith("I have written about idempotency before")
    assert text.endswith("that is the whole point of the exercise.")


def test_restore_code_touches_only_the_flattened_block() -> None:
    flat = "Intro line.\n\ndef f(x): return x + 1\n\nOutro line."
    assert restore_code(flat, ["def f(x):\n    return x + 1"]) == (
        "Intro line.\n\n```\ndef f(x):\n    return x + 1\n```\n\nOutro line."
    )
    assert restore_code(flat, ["not in the text"]) == flat
