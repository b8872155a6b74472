"""The sample corpus's articles and posts as the benchmarks read them (imported by evaluation.py and local_llm.py)."""

from __future__ import annotations

import json

Document = tuple[str, str, str, str, str]  # id, category, link, title, text


def sample_documents() -> list[Document]:
    """Every article and post with text, sorted by id: its text with whitespace collapsed, its title (or its
    first sentence, 80 characters at most)."""
    from twin_core.demo import sample_dir

    docs = []
    for fname, category in (("ArticleDocument.json", "articles"), ("PostDocument.json", "posts")):
        for doc in json.loads((sample_dir() / fname).read_text()):
            content = doc["content"]
            text = " ".join(str(content.get("Content") or content.get("text") or "").split())
            title = content.get("Title") or text.split(".")[0][:80]
            if text:
                docs.append((doc["_id"], category, doc.get("link", ""), title, text))
    return sorted(docs)
