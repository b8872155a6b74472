"""Per-link crawl failures. One failing link never stops the others: the runner records the reason."""

from __future__ import annotations


class CrawlError(Exception):
    """A link could not be crawled. ``reason`` is a short stable code for the run report."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
