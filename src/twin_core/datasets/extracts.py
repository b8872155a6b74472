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


def _pack(units: list[str], joiner: str, min_chars: int, max_chars: int) -> list[str]:
    """Greedy packing of units into pieces ≤ max_chars; a short tail joins the previous piece if it fits."""
    pieces: list[str] = []
    cur: list[str] = []
    size = 0
    for unit in units:
        add = len(unit) + (len(joiner) if cur else 0)
        if cur and size + add > max_chars:
            pieces.append(joiner.join(cur))
            cur, size = [], 0
            add = len(unit)
        cur.append(unit)
        size += add
    if cur:
        tail = joiner.join(cur)
        if pieces and len(tail) < min_chars // 2 and len(pieces[-1]) + len(joiner) + len(tail) <= max_chars * 1.25:
            pieces[-1] = pieces[-1] + joiner + tail
        else:
            pieces.append(tail)
    return pieces


def _prose_units(text: str, max_chars: int) -> list[str]:
    units: list[str] = []
    for para in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not para:
            continue
        if len(para) <= max_chars:
            units.append(para)
        else:
            units += _pack(_SENTENCE_END.split(para), " ", max_chars // 2, max_chars)
    return units


def _code_files(text: str) -> list[tuple[str, str]]:
    """``# path`` sections of a cleaned repository -> (path, body) with the body's lines untouched."""
    files: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        m = _FILE_HEADER.match(line)
        if m and ("/" in m.group(1) or "." in m.group(1)) and " " not in m.group(1).strip():
            files.append((m.group(1).strip(), []))
        elif files:
            files[-1][1].append(line)
        else:
            files.append(("", [line]))
    return [(path, "\n".join(lines).strip("\n")) for path, lines in files if "\n".join(lines).strip()]


def _code_units(body: str) -> list[str]:
    """Blocks that start at a top-level definition (decorators stay with what they decorate)."""
    blocks: list[list[str]] = [[]]
    for line in body.split("\n"):
        starts = bool(_TOP_LEVEL.match(line))
        prev_is_decorator = bool(blocks[-1]) and blocks[-1][-1].startswith("@")
        if starts and blocks[-1] and not prev_is_decorator and any(x.strip() for x in blocks[-1]):
            blocks.append([])
        blocks[-1].append(line)
    return ["\n".join(b).strip("\n") for b in blocks if any(x.strip() for x in b)]


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
    is_code = doc.category.value == "repositories" if hasattr(doc.category, "value") else doc.category == "repositories"
    pieces: list[tuple[str, str | None]] = []
    if is_code:
        for path, body in _code_files(doc.content):
            pieces += [(p, path or None) for p in _pack(_code_units(body), "\n\n", min_chars, max_chars)]
    else:
        pieces = [(p, _heading(p)) for p in _pack(_prose_units(doc.content, max_chars), "\n\n", min_chars, max_chars)]
    category = doc.category.value if hasattr(doc.category, "value") else str(doc.category)
    title = _title(doc)
    return [
        Extract(doc.id, i, text, title, heading, category, doc.link, is_code)
        for i, (text, heading) in enumerate(pieces)
        if text.strip()
    ]
