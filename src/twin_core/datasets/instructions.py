"""The extractive strategy: the answer is the author's verbatim extract; the instruction is written
from the extract's own topic (title, heading, first sentence, key phrases) in one of several forms,
chosen deterministically from the seed and the extract, so the dataset is not one template.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from twin_core.datasets.extracts import Extract

PROSE_FORMS: dict[str, str] = {
    "write_about": 'Write a few paragraphs about {phrase}, as in your piece "{title}".',
    "explain": "Explain {phrase} the way you would to your readers.",
    "opinion": "What is your take on {phrase}? Answer in your own words.",
    "continue": 'Continue this passage from "{title}": "{first}"',
    "section": 'Write the part of "{title}" about {heading}.',
    "question": "How would you describe {phrase} and {phrase2}?",
}
CODE_FORMS: dict[str, str] = {
    "implement": "Write the code for `{name}` in {path}.",
    "show": "Show how you implemented {name} in {path}.",
    "module": "Write the {lang} code of {path} that defines {name}.",
}
_LANGS = {".py": "Python", ".js": "JavaScript", ".ts": "TypeScript", ".go": "Go", ".rs": "Rust", ".java": "Java"}
_DEF_NAME = re.compile(r"^(?:async\s+)?(?:def|class|function|fn|func|pub fn)\s+([A-Za-z_][\w]*)", re.M)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")  # contractions are dropped below: never a topic
_STOP = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "also",
        "among",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "could",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "even",
        "every",
        "from",
        "further",
        "have",
        "having",
        "here",
        "hers",
        "herself",
        "himself",
        "into",
        "itself",
        "just",
        "like",
        "made",
        "make",
        "many",
        "more",
        "most",
        "much",
        "must",
        "never",
        "only",
        "other",
        "ours",
        "ourselves",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "whom",
        "will",
        "with",
        "would",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "into",
        "onto",
        "upon",
        "also",
        "still",
        "really",
        "thing",
        "things",
        "something",
        "every",
        "people",
        "they're",
        "don't",
        "it's",
        "that's",
        "i'm",
        "we're",
        "you're",
    ]
)


def key_phrases(text: str, n: int = 3) -> list[str]:
    """The most frequent content words and word pairs of ``text`` (pairs first), lower case."""
    words = [w.lower() for w in _WORD.findall(text) if "'" not in w]
    content = [w for w in words if w not in _STOP]
    pairs = Counter(
        f"{a} {b}" for a, b in zip(words, words[1:], strict=False) if a not in _STOP and b not in _STOP
    ).most_common()
    singles = Counter(content).most_common()
    out: list[str] = [p for p, c in pairs if c > 1][:n]
    for w, _ in singles:
        if len(out) >= n:
            break
        if not any(w in p for p in out):
            out.append(w)
    return out


def first_sentence(text: str, title: str = "", limit: int = 160) -> str:
    """The first sentence of ``text`` after its title line, if it starts with one."""
    lines = [line.strip() for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) > 1 and title and lines[0] == title.strip():
        lines = lines[1:]
    body = " ".join(lines)
    sent = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0]
    return sent if len(sent) <= limit else sent[:limit].rsplit(" ", 1)[0] + "…"


def _pick(options: list[str], seed: int, key: str) -> str:
    h = int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest(), 16)
    return options[h % len(options)]


def write_instruction(extract: Extract, seed: int) -> tuple[str, str]:
    """(form name, instruction) for ``extract``; same seed and text -> same instruction."""
    if extract.is_code:
        names = _DEF_NAME.findall(extract.text)
        path = extract.heading or "this repository"
        suffix = "." + path.rsplit(".", 1)[-1] if "." in path else ""
        values = {"name": names[0] if names else path, "path": path, "lang": _LANGS.get(suffix, "the")}
        form = _pick(sorted(CODE_FORMS), seed, extract.hash)
        return form, CODE_FORMS[form].format(**values)
    phrases = key_phrases(extract.text) or [extract.title.lower()]
    values = {
        "phrase": phrases[0],
        "phrase2": phrases[1] if len(phrases) > 1 else extract.title.lower(),
        "title": extract.title,
        "first": first_sentence(extract.text, extract.title),
        "heading": (extract.heading or phrases[0]).lower(),
    }
    options = sorted(f for f in PROSE_FORMS if f != "section" or extract.heading)
    if len(phrases) < 2:
        options = [f for f in options if f != "question"]
    form = _pick(options, seed, extract.hash)
    return form, PROSE_FORMS[form].format(**values)
