"""Export a version in the Hugging Face ``datasets`` layout that TRL reads: ``data/<split>.parquet``
and a dataset card (``README.md`` with YAML front matter naming the splits).

The destination must be absent, empty or an earlier export (it holds ``.twin-export.json``, written last
by every export): anything else is refused (InputError) unless ``force``, so an export never replaces a
README or a parquet file it did not write. Each file is written to a temporary sibling and renamed, so a
killed export leaves whole files only (and no marker if it did not finish)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from twin_core.datasets.versions import load_dataset_version, to_parquet
from twin_core.errors import InputError, writing_to
from twin_core.settings import Settings

MARKER = ".twin-export.json"  # names the version exported; its presence marks the folder as an export

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


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` to a temporary sibling, then renamed onto ``path``: never a half file under its name."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def refuse_foreign(dest: Path, version_id: str) -> None:
    """InputError unless ``dest`` is absent, an empty folder or an earlier export (its marker)."""
    if not dest.is_dir() or (dest / MARKER).is_file():
        return  # absent (created), an earlier export, or a file (writing_to reports it)
    entries = sorted(p.name for p in dest.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise InputError(
            f"cannot export dataset {version_id} to {dest}: the folder is not empty ({shown}) and is not an "
            f"earlier dataset export (no {MARKER}); choose an empty or new folder, or pass --force to "
            "overwrite README.md and data/*.parquet there"
        )


def export_version(settings: Settings, version_id: str, dest: Path, force: bool = False) -> dict[str, Any]:
    v = load_dataset_version(settings, version_id)
    dest = Path(dest)
    if not force:
        refuse_foreign(dest, v.version_id)
    data = dest / "data"
    counts = {}
    with writing_to(dest, f"dataset {v.version_id}"):
        data.mkdir(parents=True, exist_ok=True)
        # the marker first says "being written": a kill below leaves a folder a re-run may overwrite, and no
        # earlier export's marker vouching for these new files
        writing = {"version": v.version_id, "complete": False}
        _write_atomic(dest / MARKER, json.dumps(writing, indent=2).encode())
        for split in ("train", "test"):
            rows = v.rows(split)
            _write_atomic(data / f"{split}.parquet", to_parquet(rows))
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
    marker = {
        "version": v.version_id,
        "complete": True,
        "files": ["README.md", *(f"data/{s}.parquet" for s in counts)],
    }
    with writing_to(dest, f"dataset {v.version_id}"):
        _write_atomic(dest / "README.md", card.encode("utf-8"))
        _write_atomic(dest / MARKER, json.dumps(marker, indent=2).encode())  # last: the export is complete
    return {"version": v.version_id, "dest": str(dest), "rows": counts}
