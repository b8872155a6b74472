"""
### twin_etl — collect an author's writing into the warehouse

Crawls every link of the trigger form (articles, posts, repositories) with the crawler for its domain,
one mapped task per link, stores standardized raw documents in the warehouse (MongoDB), validates them
with Great Expectations, and emits the Asset `twin://warehouse/raw`, which triggers `twin_features`.

**Trigger form:** `user_full_name` (the author) and `links` (one URL per line). Runs weekly to refresh
the same links; backfill with `airflow backfill create --dag-id twin_etl --from-date ... --to-date ...`.

Every task runs `twin …` as a Kubernetes pod (`TWIN_EXECUTION=kubernetes`) or a local subprocess.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step, twin_step_mapped
from twin_ops.assets import RAW


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
    },
    **dag_kwargs(__doc__, tags=["etl", "feature-pipeline-input"]),
)
def twin_etl() -> None:
    @task
    def plan_crawls(params: dict | None = None) -> list[list[str]]:
        """One `twin etl crawl` argument list per unique link (XCom carries only the links)."""
        params = params or {}
        links = list(dict.fromkeys(link.strip() for link in params.get("links", []) if link.strip()))
        user = params["user_full_name"]
        return [["etl", "crawl", "--user", user, "--link", link] for link in links]

    crawl = twin_step_mapped("crawl", profile="cpu").expand(arguments=plan_crawls())
    validate = twin_step(
        "validate_raw", ["validate", "raw"], profile="cpu", outlets=[RAW], trigger_rule="all_done"
    )
    crawl >> validate


twin_etl()
