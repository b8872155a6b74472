"""Export a version in the Hugging Face ``datasets`` layout that TRL reads: ``data/<split>.parquet``
and a dataset card (``README.md`` with YAML front matter naming the splits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twin_core.datasets.versions import load_dataset_version, to_parquet
from twin_core.errors import writing_to
from twin_core.settings import Settings

CARD = """---
language:
- en
pretty_name: "{title}"
configs:
- config_name: default
  data_files:
{files}
---

# {title}

{kind_text} dataset of **{author}**, built by LLM Twin (`twin datasets build`) from the author's own
writing: every answer{chosen} is the author's verbatim text.

| | |
|---|---|
| version | `{version}` |
| strategy | {strategy} |
| splits | {splits} |
| source documents | {documents} |
| prompt version | {prompt_version} |

Split by document (no document in both splits); train rows sharing an n-gram with the test split were
removed. Filter counts: `{filters}`.
"""


def export_version(settings: Settings, version_id: str, dest: Path) -> dict[str, Any]:
    v = load_dataset_version(settings, version_id)
    data = Path(dest) / "data"
    counts = {}
    with writing_to(dest, f"dataset {v.version_id}"):
        data.mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            rows = v.rows(split)
            (data / f"{split}.parquet").write_bytes(to_parquet(rows))
            counts[split] = len(rows)
    meta = v.metadata
    files = "\n".join(f"  - split: {s}\n    path: data/{s}.parquet" for s in counts)
    card = CARD.format(
        title=f"LLM Twin {v.kind} — {v.author}",
        files=files,
        kind_text="Instruction" if v.kind == "instruct" else "Preference (DPO)",
        author=v.author,
        chosen=" (chosen)" if v.kind == "preference" else "",
        version=v.version_id,
        strategy=meta.get("strategy"),
        splits=", ".join(f"{k}: {n}" for k, n in counts.items()),
        documents=len(meta.get("lineage", {}).get("documents", [])),
        prompt_version=meta.get("prompt_version"),
        filters=json.dumps(meta.get("filters", {}), sort_keys=True),
    )
    with writing_to(dest, f"dataset {v.version_id}"):
        (Path(dest) / "README.md").write_text(card, encoding="utf-8")
    return {"version": v.version_id, "dest": str(dest), "rows": counts}
