"""
### twin_datasets — instruction and preference datasets from each author's own writing

Triggered by `twin://features/cleaned` (emitted by `twin_features`) or, while the closed loop is on
(`TWIN_RETRAIN_ON_DRIFT`), by `twin://monitoring/drift`. One mapped task per author runs
`twin datasets build --author NAME`:

- the author's cleaned documents are cut into extracts (paragraphs; code on top-level definitions);
- **instruct**: an instruction per extract whose answer is the author's verbatim text (extractive
  strategy, no LLM), or pairs from an LLM (`strategy=llm`);
- **preference**: chosen = the author's text, rejected = what the current production model (the base
  model until one is registered) answers through the serving prompt;
- filters, deduplication, a split by document, decontamination and a Great Expectations suite; Data
  Docs and the versions go to the artifact store (`datasets/<kind>/<author>/vNNNN/`).

An unchanged corpus gives the existing versions and no model call. `check_versions` emits
`twin://datasets/instruct` and `twin://datasets/preference` **only when a version was created**, with
`{"versions": {"<author_slug>": {"instruct": id, "preference": id}}}` in the event's extra, which
`twin_training` trains on.

**Trigger form:** `strategy`, `max_extracts` (0 = all), `max_rejected` (preference candidates per author),
`pair_kinds` (`model`: a length-matched model answer per candidate; `other_author`: another author's
nearest passage, no model call).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step, twin_step_mapped
from twin_ops.assets import CLEANED, INSTRUCT, PREFERENCE, or_drift
from twin_ops.config import execution_mode

# The embedded Qdrant (local mode) admits one process at a time: authors one by one there.
AUTHORS_IN_PARALLEL = None if execution_mode() == "kubernetes" else 1


@dag(
    dag_id="twin_datasets",
    schedule=or_drift(CLEANED),
    params={
        "strategy": Param("extractive", enum=["extractive", "llm"], title="Strategy", description="llm needs a model."),
        "max_extracts": Param(0, type="integer", minimum=0, title="Max extracts", description="Per author; 0 = all."),
        "max_rejected": Param(32, type="integer", minimum=0, title="Max preference pairs", description="Per author."),
        "pair_kinds": Param(
            "model,other_author",
            enum=["model,other_author", "model", "other_author"],
            title="Preference pair kinds",
            description="other_author alone needs no model call.",
        ),
    },
    **dag_kwargs(__doc__, tags=["datasets", "fti-training-pipeline"], step_timeout=timedelta(hours=1)),
)
def twin_datasets() -> None:
    authors = twin_step("list_authors", ["warehouse", "authors"], profile="cpu")

    @task
    def plan_builds(listed: dict | None, params: dict | None = None) -> list[list[str]]:
        """One `twin datasets build --author NAME` argument list per author."""
        p = params or {}
        options = ["--strategy", str(p.get("strategy") or "extractive")]
        options += ["--max-extracts", str(int(p.get("max_extracts") or 0))]
        options += ["--max-rejected", str(int(p.get("max_rejected") if p.get("max_rejected") is not None else 32))]
        options += ["--pair-kinds", str(p.get("pair_kinds") or "model,other_author")]
        return [
            ["datasets", "build", "--author", name, *options] for name in sorted((listed or {}).get("authors") or [])
        ]

    build = twin_step_mapped(
        "build_author", profile="cpu", qdrant=True, max_active_tis_per_dagrun=AUTHORS_IN_PARALLEL
    ).expand(arguments=plan_builds(authors.output))

    @task(outlets=[INSTRUCT, PREFERENCE], trigger_rule="none_failed")
    def check_versions(results: list[dict] | None, **context) -> dict:
        """Emit both dataset Assets with the versions of the authors that got a new one (only they train)."""
        from airflow.sdk.exceptions import AirflowSkipException

        versions: dict[str, dict] = {}
        for result in results or []:
            for author in (result or {}).get("authors") or []:
                if any(author.get("created", {}).values()):  # unchanged authors are not trained again
                    versions[author["author_slug"]] = author["versions"]
        if not versions:
            raise AirflowSkipException(
                "no new dataset version: every author's corpus is unchanged since its last build, so "
                "twin_training is not triggered (the same data would train the same model)"
            )
        extra = {"versions": versions}
        context["outlet_events"][INSTRUCT].extra = extra
        context["outlet_events"][PREFERENCE].extra = extra
        print(f"dataset versions: {extra}")
        return extra

    check_versions(build.output)


twin_datasets()
