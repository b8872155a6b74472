"""Great Expectations plumbing shared by every suite (raw documents, datasets).

Each expectation carries a ``reason`` in its ``meta``; a failing row is reported with those reasons.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any


def run_suite(context: Any, source: Any, name: str, suite: Any, frame: Any, id_column: str = "id") -> Any:
    """Validate ``frame`` with ``suite`` through a checkpoint on the pandas ``source`` (COMPLETE results
    indexed by ``id_column``, as ``failing_rows`` reads them); returns the checkpoint result."""
    import great_expectations as gx

    batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(f"{name}_all")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=context.suites.add(suite))
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[definition],
            actions=[],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [id_column]},
        )
    )
    return checkpoint.run(batch_parameters={"dataframe": frame})


def failing_rows(result: Any, id_column: str = "id") -> dict[str, list[str]]:
    """Row id -> reasons, from one checkpoint result (COMPLETE format, indexed by ``id_column``)."""
    reasons: dict[str, list[str]] = {}
    for run in result.run_results.values():
        for er in run.results:
            if er.success:
                continue
            reason = (er.expectation_config.meta or {}).get("reason") or er.expectation_config.type
            for item in er.result.get("unexpected_index_list") or []:
                row_id = item[id_column] if isinstance(item, dict) else str(item)
                if reason not in reasons.setdefault(row_id, []):
                    reasons[row_id].append(reason)
    return reasons


def publish_data_docs(context: Any, store: Any, prefix: str) -> str:
    """Build Data Docs into a temp folder, upload every file under ``prefix``; returns the index URI."""
    tmp = Path(tempfile.mkdtemp(prefix="twin-gx-docs-"))
    try:
        context.add_data_docs_site(
            site_name="twin",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        context.build_data_docs(site_names=["twin"])
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            store.put_file(f"{prefix}/{path.relative_to(tmp).as_posix()}", path)
        return store.uri(f"{prefix}/index.html")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
