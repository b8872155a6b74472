"""Cut cleaned documents into extracts of about 1,000–2,000 characters.

Prose is cut on paragraph boundaries (a paragraph longer than the maximum is cut on sentence ends).
Code (repositories) is cut per file on top-level definitions and never re-flowed: every extract is a
verbatim, contiguous slice of the cleaned text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twin_core.domain.features import CleanedDocument
from twin_core.domain.ids import content_hash

MIN_CHARS = 1000
MAX_CHARS = 2000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_TOP_LEVEL = re.compile(r"^(?:def |class |async def |function |export |fn |func |pub fn |public |private |@)")
_FILE_HEADER = re.compile(r"^# (\S.*)$")


@dataclass(frozen=True)
class Extract:
    document_id: str
    index: int
    text: str
    title: str
    heading: str | None
    category: str
    link: str
    is_code: bool

    @property
    def hash(self) -> str:
        return content_hash(self.text)


Span = tuple[int, int]  # [start, end) in the cleaned text: extracts are always slices, never re-joined


def _pack(units: list[Span], min_chars: int, max_chars: int) -> list[Span]:
    """Greedy packing of consecutive units into spans ≤ max_chars; a short tail joins the previous one."""
    pieces: list[Span] = []
    cur: Span | None = None
    for start, end in units:
        if cur and end - cur[0] > max_chars:
            pieces.append(cur)
            cur = None
        cur = (cur[0], end) if cur else (start, end)
    if cur:
        if pieces and cur[1] - cur[0] < min_chars // 2 and cur[1] - pieces[-1][0] <= max_chars * 1.25:
            pieces[-1] = (pieces[-1][0], cur[1])
        else:
            pieces.append(cur)
    return pieces


def _matches(pattern: re.Pattern[str], text: str, start: int, end: int) -> list[Span]:
    """Spans of the non-blank pieces of text[start:end] between ``pattern`` separators."""
    out: list[Span] = []
    pos = start
    for m in pattern.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    return [_strip(text, a, b) for a, b in out if text[a:b].strip()]


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _prose_units(text: str, max_chars: int) -> list[Span]:
    units: list[Span] = []
    for start, end in _matches(_PARAGRAPH_BREAK, text, 0, len(text)):
        if end - start <= max_chars:
            units.append((start, end))
        else:
            units += _pack(_matches(_SENTENCE_END, text, start, end), max_chars // 2, max_chars)
    return units


def _code_files(text: str) -> list[tuple[str, Span]]:
    """``# path`` sections of a cleaned repository -> (path, span of the body) with lines untouched."""
    files: list[tuple[str, int, int]] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        m = _FILE_HEADER.match(line.rstrip("\n"))
        if m and ("/" in m.group(1) or "." in m.group(1)) and " " not in m.group(1).strip():
            files.append((m.group(1).strip(), pos + len(line), pos + len(line)))
        elif files:
            files[-1] = (files[-1][0], files[-1][1], pos + len(line))
        else:
            files.append(("", pos, pos + len(line)))
        pos += len(line)
    return [(path, (a, b)) for path, a, b in files if text[a:b].strip()]


def _code_units(text: str, start: int, end: int) -> list[Span]:
    """Blocks that start at a top-level definition (decorators stay with what they decorate)."""
    starts = [start]
    pos = start
    prev = ""
    for line in text[start:end].splitlines(keepends=True):
        if _TOP_LEVEL.match(line) and not prev.startswith("@") and text[starts[-1] : pos].strip():
            starts.append(pos)
        if line.strip():
            prev = line
        pos += len(line)
    bounds = [*starts, end]
    return [_strip(text, a, b) for a, b in zip(bounds, bounds[1:], strict=False) if text[a:b].strip()]


def _title(doc: CleanedDocument) -> str:
    meta_title = doc.metadata.get("title") if isinstance(doc.metadata, dict) else None
    if meta_title:
        return str(meta_title)
    first = doc.content.strip().split("\n", 1)[0].strip()
    return first[:120] if first else doc.link


def _heading(text: str) -> str | None:
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("#") and len(s.lstrip("# ")) > 2:
            return s.lstrip("# ").strip()
    return None


def cut(doc: CleanedDocument, *, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS) -> list[Extract]:
    category = doc.category.value if hasattr(doc.category, "value") else str(doc.category)
    text = doc.content
    pieces: list[tuple[Span, str | None]] = []
    if category == "repositories":
        for path, (a, b) in _code_files(text):
            pieces += [(span, path or None) for span in _pack(_code_units(text, a, b), min_chars, max_chars)]
    else:
        pieces = [
            (span, _heading(text[span[0] : span[1]]))
            for span in _pack(_prose_units(text, max_chars), min_chars, max_chars)
        ]
    title = _title(doc)
    return [
        Extract(doc.id, i, text[a:b], title, heading, category, doc.link, category == "repositories")
        for i, ((a, b), heading) in enumerate(pieces)
        if text[a:b].strip()
    ]
