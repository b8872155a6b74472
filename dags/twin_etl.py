"""
### twin_etl — collect an author's writing into the warehouse

Crawls every link of the trigger form (articles, posts, repositories) with the crawler for its domain,
one mapped task per link, stores standardized raw documents in the warehouse (MongoDB), validates them
with Great Expectations, and emits the Asset `twin://warehouse/raw`, which triggers `twin_features`.

**Trigger form:**
- `user_full_name`: the author, whose name the documents are stored under; required with links
  (unless the config sets it), no default: links without an author fail `plan_crawls` at once;
- `links`: one URL per line (articles, Medium, a LinkedIn profile, git repositories);
- `config` (optional): the name of a YAML file in `configs/etl/` (for example `ada_quillfeather`) with
  `user_full_name`, `links` and crawl `settings`; its links are added to the form's, all crawled as its
  author. Leave `user_full_name` empty with a config, or give the same name (case and spacing aside):
  another name fails `plan_crawls`, since the form's links would be filed under the config's author.
  A bad name, a missing or malformed file, or a config without links fails `plan_crawls` at once
  (no retry), with what to fix in its message.

A run with neither `links` nor a `config` crawls the Airflow Variable `twin_etl_default_config`'s config;
without that Variable, a manual run (an author alone, or an empty form) fails `plan_crawls` at once
instead of ending green having crawled nothing.
Scheduled (weekly) and backfill runs have no form: they use the config named by the Airflow Variable
`twin_etl_default_config`, if set; with no config and no links a run crawls nothing and emits nothing.
Backfill (one run per week, oldest first, one at a time: without `--max-active-runs 1`, `airflow backfill
create` runs up to 10 at once, whatever the DAG's `max_active_runs`):
`airflow backfill create --dag-id twin_etl --from-date 2026-01-01 --to-date 2026-01-31 --max-active-runs 1`.

Every task runs `twin …` as a Kubernetes pod (`TWIN_EXECUTION=kubernetes`) or a local subprocess. A
failing link fails only its own mapped task, with its reason in the task log and failure message. A
crawl whose failures a later try may fix (a timeout, a 5xx or 429 answer, a DNS or connection failure,
the warehouse unavailable; exit code 4) is retried; one that can never succeed (an invalid URL, a 404,
a page too large or empty, ...; exit code 3, bad input) is not (twin_core.etl.errors classifies each
reason). `check_changes` lets validation run when at least one crawl created or updated a document, even
if other links failed: validation quarantines bad documents instead of failing (up to the configured
failure ratio) and emits the raw Asset. A stored document counts as created or updated in every crawl's
result until `validate_raw` has seen it, so a crawl retried after its result was lost (a killed pod, a
failed XCom push) still lets validation run. A run that changed nothing emits nothing, so `twin_features`
does not start. `check_crawls` fails the run when `plan_crawls` or any crawl failed (the good links'
documents are still validated and emitted), so a run with a failed link never shows as a success.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step, twin_step_mapped
from twin_ops.assets import RAW
from twin_ops.config import execution_mode
from twin_ops.etl_config import CONFIG_NAME_PATTERN, available_configs

# The embedded warehouse is one file: local runs crawl one link at a time; pods crawl in parallel.
CRAWLS_IN_PARALLEL = None if execution_mode() == "kubernetes" else 1


@dag(
    dag_id="twin_etl",
    schedule="@weekly",
    params={
        "user_full_name": Param(
            None,
            type=["null", "string"],
            maxLength=200,
            title="Author full name",
            description="Who wrote the links (their documents are stored under this name), e.g. Ada "
            "Quillfeather. Required with links, unless the config sets it; with a config, empty or the "
            "config's author.",
        ),
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
            pattern=f"^$|{CONFIG_NAME_PATTERN}",
            title="ETL config (optional)",
            description="A YAML file name from configs/etl/ (author, links, crawl settings).",
            examples=available_configs() or None,
        ),
    },
    **dag_kwargs(__doc__, tags=["etl", "feature-pipeline-input"], step_timeout=timedelta(minutes=45)),
)
def twin_etl() -> None:
    @task
    def plan_crawls(params: dict | None = None, dag_run=None) -> list[list[str]]:
        """Merge the form with the optional config into one crawl command per link."""
        from airflow.sdk import Variable
        from twin_ops.etl_config import DEFAULT_CONFIG_VARIABLE, plan

        manual = getattr(dag_run, "run_type", None) == "manual"  # a trigger (form, REST API, `dags test`)
        return plan(params or {}, Variable.get(DEFAULT_CONFIG_VARIABLE, default=None), manual=manual)

    @task.short_circuit(trigger_rule="all_done")
    def check_changes(results: list[dict] | None) -> bool:
        """Go on to validation (and the raw Asset) only if a crawl created or updated a document."""
        from twin_ops.etl_config import documents_changed

        changed = documents_changed(list(results or []))
        print(f"documents created or updated: {changed}")
        return changed > 0

    @task(trigger_rule="one_failed")
    def check_crawls() -> None:
        """Fail the run when planning or a crawl failed (runs only then; skipped when all went well)."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            "plan_crawls or a crawl failed (their logs and alerts give the reasons); "
            "the links that succeeded are still validated"
        )

    planned = plan_crawls()
    crawl = twin_step_mapped("crawl", profile="cpu", max_active_tis_per_dagrun=CRAWLS_IN_PARALLEL).expand(
        arguments=planned
    )
    validate = twin_step("validate_raw", ["validate", "raw"], profile="cpu", outlets=[RAW])
    check_changes(crawl.output) >> validate
    [planned, crawl] >> check_crawls()


twin_etl()
