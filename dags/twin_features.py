"""
### twin_features — the feature pipeline: clean, chunk, embed into Qdrant

Triggered by the Asset `twin://warehouse/raw` (emitted by `twin_etl`). One mapped task per author runs
`twin features run --author NAME`: it cleans each new or changed raw document (NFKC, boilerplate,
whitespace, PII), chunks it with the embedding model's own tokenizer (no chunk is ever truncated),
embeds the chunks with sentence-transformers and loads them into Qdrant (`cleaned_*`, `embedded_*`).
Unchanged documents are skipped by content hash; deleted or quarantined ones lose their points.

A last step, `sync_and_publish` (`twin features run` over the whole warehouse), catches anything the
per-author runs could not see (documents of removed authors). `check_features` then emits
`twin://features/cleaned` and `twin://features/embedded`, which trigger the dataset and inference side,
**only when a run changed the feature store** (a document processed or deleted, in the per-author runs
or the last one); a run that changed nothing is skipped there and triggers nothing.

**Trigger form:** `full` rebuilds every document (for instance after changing the embedding model).
Every step is idempotent; a failed or killed run is simply run again.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step, twin_step_mapped
from twin_ops.assets import CLEANED, EMBEDDED, RAW
from twin_ops.config import execution_mode

# The embedded Qdrant (local mode) admits one process at a time: run the authors one by one there, and
# every Qdrant step (qdrant=True) in the one-slot pool twin_embedded_qdrant, across DAG runs.
AUTHORS_IN_PARALLEL = None if execution_mode() == "kubernetes" else 1


@dag(
    dag_id="twin_features",
    schedule=[RAW],
    params={"full": Param(False, type="boolean", title="Rebuild everything", description="Ignore the sync state.")},
    **dag_kwargs(__doc__, tags=["features", "fti-feature-pipeline"], step_timeout=timedelta(hours=1)),
)
def twin_features() -> None:
    authors = twin_step("list_authors", ["warehouse", "authors"], profile="cpu")

    @task
    def plan_authors(listed: dict | None, params: dict | None = None) -> list[list[str]]:
        """One `twin features run --author NAME` argument list per author (`twin warehouse authors`)."""
        full = ["--full"] if (params or {}).get("full") else []
        names = sorted((listed or {}).get("authors") or [])
        return [["features", "run", "--author", name, *full] for name in names]

    featurize = twin_step_mapped(
        "featurize_author", profile="cpu", qdrant=True, max_active_tis_per_dagrun=AUTHORS_IN_PARALLEL
    ).expand(arguments=plan_authors(authors.output))
    publish = twin_step(
        "sync_and_publish",
        ["features", "run"],
        profile="cpu",
        qdrant=True,
        trigger_rule="none_failed",  # also runs when there is no author to map over
    )
    featurize >> publish

    @task(outlets=[CLEANED, EMBEDDED], trigger_rule="none_failed")
    def check_features(per_author: list[dict] | None, last: dict | None) -> dict:
        """Emit both feature Assets when a `twin features run` of this run processed or deleted a document;
        nothing new (every document unchanged): skipped, no event, no dataset build."""
        from airflow.sdk.exceptions import AirflowSkipException

        results = [r for r in [*(per_author or []), last] if r]
        changes = {key: sum(int(r.get(key) or 0) for r in results) for key in ("processed", "deleted")}
        print(f"features: {changes['processed']} documents processed, {changes['deleted']} deleted")
        if not any(changes.values()):
            raise AirflowSkipException("no document processed or deleted: the features are unchanged")
        return changes

    check_features(featurize.output, publish.output)


twin_features()
