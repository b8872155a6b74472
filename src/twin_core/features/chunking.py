"""Chunking per category, measured with the embedding model's own tokenizer.

Every chunk is a contiguous span ``[start, end)`` of the cleaned text (kept in its metadata), holds at
most ``chunk_tokens`` tokens *including* the special tokens the model adds, and so is embedded whole:
nothing is truncated. Neighbour chunks share up to ``overlap_tokens`` tokens.

- articles: units are sentences; cuts prefer paragraph starts, then line/sentence starts;
- posts: the same, so a short post stays whole;
- repositories: each file on its own, units are lines; cuts prefer top-level definitions.
A unit longer than the budget (a huge single line) is split into token windows at word starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twin_core.domain.documents import Category
from twin_core.domain.features import Chunk, CleanedDocument, SourceRef
from twin_core.domain.ids import chunk_id
from twin_core.domain.ids import content_hash as hash_content

PARAGRAPH = re.compile(r"[^\n]+(?:\n[^\n]+)*")
LINE = re.compile(r"[^\n]+")
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=\S)")
STRONG, WEAK, WINDOW = 2, 1, 0


@dataclass
class Unit:
    start: int
    end: int
    strength: int  # how good a place this is to start a chunk
    tokens: int = 0


def _prose_units(text: str) -> list[Unit]:
    units: list[Unit] = []
    for para in PARAGRAPH.finditer(text):
        first_in_para = True
        for line in LINE.finditer(text, para.start(), para.end()):
            start = line.start()
            for piece in SENTENCE_END.split(line.group(0)):
                at = text.index(piece, start) if piece else start
                stripped_at = at + (len(piece) - len(piece.lstrip()))
                end = at + len(piece.rstrip())
                if end > stripped_at:
                    units.append(Unit(stripped_at, end, STRONG if first_in_para else WEAK))
                    first_in_para = False
                start = at + len(piece)
    return units


def _code_units(text: str, start: int, end: int) -> list[Unit]:
    units: list[Unit] = []
    prev_blank = True
    for line in LINE.finditer(text, start, end):
        body = line.group(0)
        if not body.strip():
            prev_blank = True
            continue
        top_level = not body[0].isspace()
        units.append(Unit(line.start(), line.end(), STRONG if (top_level and prev_blank) else WEAK))
        prev_blank = False
    if units:
        units[0].strength = STRONG
    return units


def _count(tokenizer: Any, text: str, units: list[Unit]) -> None:
    if not units:
        return
    enc = tokenizer([text[u.start : u.end] for u in units], add_special_tokens=False, verbose=False)
    for unit, ids in zip(units, enc["input_ids"], strict=True):
        unit.tokens = len(ids)


def _token_windows(tokenizer: Any, text: str, unit: Unit, budget: int) -> list[Unit]:
    """Split one over-long unit into windows of <= budget tokens, cutting only where a word starts."""
    piece = text[unit.start : unit.end]
    enc = tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    windows: list[Unit] = []
    w_start, w_tokens, last_word_start = 0, 0, 0  # token indexes
    for i in range(len(offsets)):
        if i > 0 and not tokens[i].startswith("##"):
            last_word_start = i
        if w_tokens + 1 > budget:
            cut = last_word_start if last_word_start > w_start else i  # a word longer than budget: cut inside
            start, end = unit.start + offsets[w_start][0], unit.start + offsets[cut - 1][1]
            windows.append(Unit(start, end, WINDOW, cut - w_start))
            w_start, w_tokens = cut, i - cut
        w_tokens += 1
    if w_start < len(offsets):
        windows.append(Unit(unit.start + offsets[w_start][0], unit.end, WINDOW, len(offsets) - w_start))
    if windows:
        windows[0].strength = unit.strength
    return windows


def _fit(tokenizer: Any, text: str, units: list[Unit], budget: int) -> list[Unit]:
    out: list[Unit] = []
    for unit in units:
        out.extend(_token_windows(tokenizer, text, unit, budget) if unit.tokens > budget else [unit])
    return out


def _pack(units: list[Unit], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy packing into unit index ranges [i, j), each <= budget tokens, with overlap."""
    ranges: list[tuple[int, int]] = []
    n, i, fresh = len(units), 0, 0
    while fresh < n:
        j, total = i, 0
        while j < n and total + units[j].tokens <= budget:
            total += units[j].tokens
            j += 1
        if j < n:  # not the tail: step back to a better boundary if it keeps the chunk at least half full
            for level in (STRONG, WEAK):
                cuts = [k for k in range(fresh + 1, j) if units[k].strength >= level]
                cuts = [k for k in cuts if sum(u.tokens for u in units[i:k]) >= budget // 2]
                if cuts:
                    j = cuts[-1]
                    break
        ranges.append((i, j))
        fresh = j
        if j >= n:
            break
        k, shared = j, 0
        while k - 1 > i and shared + units[k - 1].tokens <= overlap:
            k -= 1
            shared += units[k].tokens
        while k < j and shared + units[j].tokens > budget:  # the next unit must fit after the overlap
            shared -= units[k].tokens
            k += 1
        i = k
    return ranges


def chunk_spans(cleaned: CleanedDocument, tokenizer: Any, budget: int, overlap: int) -> list[tuple[int, int, dict]]:
    """Character spans of the chunks of ``cleaned`` (budget in tokens, special tokens excluded)."""
    text = cleaned.content
    overlap = min(overlap, budget // 2)
    groups: list[tuple[list[Unit], dict]] = []
    if cleaned.category == Category.REPOSITORIES and cleaned.metadata.get("files"):
        for path, start, end in cleaned.metadata["files"]:
            groups.append((_code_units(text, start, end), {"file": path}))
    elif cleaned.category == Category.REPOSITORIES:
        groups.append((_code_units(text, 0, len(text)), {}))
    else:
        groups.append((_prose_units(text), {}))
    spans: list[tuple[int, int, dict]] = []
    for units, meta in groups:
        _count(tokenizer, text, units)
        units = _fit(tokenizer, text, units, budget)
        for i, j in _pack(units, budget, overlap):
            spans.append((units[i].start, units[j - 1].end, meta))
    return spans


def chunk_document(cleaned: CleanedDocument, embedder: Any, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Chunks of one cleaned document; each one verified to fit the model without truncation."""
    limit = min(chunk_tokens, embedder.max_tokens)
    budget = limit - embedder.special_tokens
    tokenizer = embedder.tokenizer
    spans = chunk_spans(cleaned, tokenizer, budget, overlap_tokens)
    texts = [cleaned.content[s:e] for s, e, _ in spans]
    counts = embedder.count_tokens(texts)
    verified: list[tuple[int, int, dict, int]] = []
    for (start, end, meta), count in zip(spans, counts, strict=True):
        if count <= limit:
            verified.append((start, end, meta, count))
            continue
        # A tokenizer whose pieces are not word-local (rare): re-split this span by token windows.
        unit = Unit(start, end, WINDOW, count)
        for w in _token_windows(tokenizer, cleaned.content, unit, budget - 8):
            verified.append((w.start, w.end, meta, embedder.count_tokens([cleaned.content[w.start : w.end]])[0]))
    chunks: list[Chunk] = []
    for index, (start, end, meta, count) in enumerate(verified):
        body = cleaned.content[start:end]
        digest = hash_content(body)
        chunks.append(
            Chunk(
                id=chunk_id(cleaned.id, index, digest),
                document_id=cleaned.id,
                chunk_index=index,
                **SourceRef.fields_of(cleaned),
                content=body,
                content_hash=digest,
                token_count=count,
                metadata={"start": start, "end": end, **meta},
            )
        )
    return chunks
