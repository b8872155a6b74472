"""Text normalization shared by the cleaning handlers.

Faithful to the author: words are never rewritten, only normalized (NFKC turns "mathematical bold"
letters into plain ones), and crawler leftovers (share/subscribe/navigation lines, URL-only lines,
emoji runs) are dropped. Paragraph breaks, list markers, indentation and fenced code blocks are kept.
"""

from __future__ import annotations

import re
import unicodedata

# Whole lines that crawlers leave behind (matched case-insensitively on the stripped line).
BOILERPLATE_LINE = re.compile(
    r"^(?:"
    r"share(?: this(?: post| article)?)?(?: on \w+)?|subscribe(?: now| for free)?|sign (?:up|in)|log ?in|"
    r"follow(?: me)?(?: on \w+)?|open in app|listen|read more|see more|show more|continue reading|"
    r"\d+\s*min(?:ute)?s? read|\d+ (?:claps?|comments?|likes?|reactions?|reposts?)|like|comment|repost|send|"
    r"copy link|back to top|skip to (?:main )?content|table of contents|home|menu|"
    r"thanks for reading[^\n]{0,60}|originally published (?:at|on) [^\n]{0,80}|"
    r"(?:previous|next)(?: post| article)?|all rights reserved[^\n]{0,40}|©[^\n]{0,60}"
    r")[.!:]?$",
    re.IGNORECASE,
)
URL = r"(?:https?://|www\.)\S+"
URL_ONLY_LINE = re.compile(rf"^\s*(?:[-*•>]\s*)?(?:<?{URL}>?\s*)+$", re.IGNORECASE)
# Pictographs, dingbats, symbols, flags, skin tones, variation selectors and joiners.
EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U00002b00-\U00002bff\U0001f1e6-\U0001f1ff\ufe0e\ufe0f\u200d\u20e3]+"
)
INVISIBLE = re.compile("[\u200b\u200c\u2060\ufeff\u00ad]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
# International or national numbers with separators; at least 9 digits, so years and ids survive.
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}(?!\w)")
FENCE = re.compile(r"^\s*(```|~~~)")


def normalize_unicode(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFKC", text)
    text = INVISIBLE.sub("", text)
    return CONTROL.sub("", text)


def scrub_pii(text: str, policy: str) -> str:
    if policy == "keep":
        return text
    text = EMAIL.sub("[EMAIL]", text)

    def _phone(match: re.Match[str]) -> str:
        digits = sum(ch.isdigit() for ch in match.group(0))
        return "[PHONE]" if digits >= 9 else match.group(0)

    return PHONE.sub(_phone, text)


def _is_noise_line(stripped: str) -> bool:
    if not stripped:
        return False
    rest = EMOJI.sub("", stripped).strip()
    if URL_ONLY_LINE.match(rest) or BOILERPLATE_LINE.match(rest):
        return True
    # nothing left but emoji, punctuation and separators: decoration, not content
    return not any(ch.isalnum() for ch in rest)


def clean_prose(text: str, *, pii_policy: str = "redact") -> str:
    """Normalize article/post text; keep paragraphs, lists, indentation and fenced code verbatim."""
    text = normalize_unicode(text)
    out: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if FENCE.match(line):
            in_code = not in_code
            out.append(line.rstrip())
            continue
        if in_code:
            out.append(line.rstrip().expandtabs(4))
            continue
        stripped = line.strip()
        if _is_noise_line(stripped):
            continue
        indent = len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())
        body = EMOJI.sub(" ", stripped)
        body = re.sub(r"[ \t\u00a0]+", " ", body).strip()
        out.append(" " * indent + body if body else "")
    cleaned = "\n".join(out)
    cleaned = re.sub(r"\n[ \t]*(?:\n[ \t]*)+\n", "\n\n", cleaned)  # at most one blank line
    return scrub_pii(cleaned.strip("\n"), pii_policy).strip()


def clean_code(text: str, *, pii_policy: str = "redact") -> str:
    """Normalize a source file: line endings, invisible characters, trailing spaces. Indentation is kept."""
    text = normalize_unicode(text)
    lines = [line.rstrip() for line in text.split("\n")]
    cleaned = "\n".join(lines)
    cleaned = re.sub(r"\n{4,}", "\n\n\n", cleaned)
    return scrub_pii(cleaned.strip("\n"), pii_policy)


def looks_binary(text: str) -> bool:
    """NUL bytes, or too many non-printable characters for source text."""
    if "\x00" in text:
        return True
    sample = text[:8192]
    if not sample:
        return False
    odd = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\n\r\t") or ch == "\ufffd")
    return odd / len(sample) > 0.05
