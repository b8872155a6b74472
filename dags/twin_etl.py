"""
### twin_etl — collect an author's writing into the warehouse

Crawls every link of the trigger form (articles, posts, repositories) with the crawler for its domain,
one mapped task per link, stores standardized raw documents in the warehouse (MongoDB), validates them
with Great Expectations, and emits the Asset `twin://warehouse/raw`, which triggers `twin_features`.

**Trigger form:**
- `user_full_name`: the author;
- `links`: one URL per line (articles, Medium, a LinkedIn profile, git repositories);
- `config` (optional): the name of a YAML file in `configs/etl/` (for example `ada_quillfeather`) with
  `user_full_name`, `links` and crawl `settings`; its links are added to the form's, its author wins.

Scheduled (weekly) and backfill runs have no form: they use the config named by the Airflow Variable
`twin_etl_default_config`, if set; with no config and no links a run crawls nothing and emits nothing.
Backfill (one run per week, oldest first):
`airflow backfill create --dag-id twin_etl --from-date 2026-01-01 --to-date 2026-01-31`.

Every task runs `twin …` as a Kubernetes pod (`TWIN_EXECUTION=kubernetes`) or a local subprocess. A
failing link fails only its own mapped task, with its reason in the task log and failure message; a
link that can never succeed (bad input, exit code 3) is not retried, an unavailable store (exit code 4)
is. `check_changes` lets validation run when at least one crawl created or updated a document:
validation quarantines bad documents instead of failing (up to the configured failure ratio) and emits
the raw Asset. A run that changed nothing emits nothing, so `twin_features` does not start.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step, twin_step_mapped
from twin_ops.assets import RAW
from twin_ops.config import execution_mode
from twin_ops.etl_config import available_configs

# The embedded warehouse is one file: local runs crawl one link at a time; pods crawl in parallel.
CRAWLS_IN_PARALLEL = None if execution_mode() == "kubernetes" else 1


@dag(
    dag_id="twin_etl",
    schedule="@weekly",
    params={
        "user_full_name": Param("Ada Quillfeather", type="string", minLength=1, title="Author full name"),
        "links": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Links to crawl",
            description="One URL per line: articles, LinkedIn posts, GitHub repositories.",
        ),
        "config": Param(
            None,
            type=["null", "string"],
            title="ETL config (optional)",
            description="A YAML file name from configs/etl/ (author, links, crawl settings).",
            examples=available_configs() or None,
        ),
    },
    **dag_kwargs(__doc__, tags=["etl", "feature-pipeline-input"]),
)
def twin_etl() -> None:
    @task
    def plan_crawls(params: dict | None = None) -> list[list[str]]:
        """Merge the form with the optional config into one crawl command per link."""
        from airflow.sdk import Variable
        from twin_ops.etl_config import plan

        return plan(params or {}, Variable.get("twin_etl_default_config", default=None))

    @task.short_circuit(trigger_rule="all_done")
    def check_changes(results: list[dict] | None) -> bool:
        """Go on to validation (and the raw Asset) only if a crawl created or updated a document."""
        from twin_ops.etl_config import documents_changed

        changed = documents_changed(list(results or []))
        print(f"documents created or updated: {changed}")
        return changed > 0

    crawl = twin_step_mapped("crawl", profile="cpu", max_active_tis_per_dagrun=CRAWLS_IN_PARALLEL).expand(
        arguments=plan_crawls()
    )
    validate = twin_step("validate_raw", ["validate", "raw"], profile="cpu", outlets=[RAW])
    check_changes(crawl.output) >> validate


twin_etl()
