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
`twin_etl_default_config`, if set. Backfill with
`airflow backfill create --dag-id twin_etl --from-date ... --to-date ...`.

Every task runs `twin …` as a Kubernetes pod (`TWIN_EXECUTION=kubernetes`) or a local subprocess. A
failing link fails only its own mapped task (its reason is in the task's XCom result); validation
runs anyway and quarantines bad documents instead of failing, up to the configured failure ratio.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step, twin_step_mapped
from twin_ops.assets import RAW
from twin_ops.config import execution_mode

_REPO_ROOT = Path(__file__).resolve().parents[1]
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The embedded warehouse is one file: local runs crawl one link at a time; pods crawl in parallel.
CRAWLS_IN_PARALLEL = None if execution_mode() == "kubernetes" else 1


def config_dirs() -> list[Path]:
    explicit = os.environ.get("TWIN_ETL_CONFIG_DIR")
    return [Path(explicit)] if explicit else [_REPO_ROOT / "configs" / "etl", Path("/opt/airflow/configs/etl")]


def available_configs() -> list[str]:
    """Config names offered in the form (a directory listing: cheap at parse time)."""
    names = {p.stem for d in config_dirs() if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def load_etl_config(name: str) -> dict:
    import yaml

    if not _CONFIG_NAME.match(name):
        raise ValueError(f"invalid config name {name!r} (a file name from configs/etl/, no path)")
    stem = name.removesuffix(".yaml")
    for folder in config_dirs():
        path = folder / f"{stem}.yaml"
        if path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a mapping")
            return data
    raise ValueError(f"ETL config {name!r} not found in {', '.join(map(str, config_dirs()))}")


def plan(params: dict, default_config: str | None = None) -> list[list[str]]:
    """One `twin etl crawl` argument list per unique link (XCom carries only the links)."""
    config_name = (params.get("config") or "").strip() or None
    form_links = [str(x).strip() for x in params.get("links") or [] if str(x).strip()]
    if not config_name and not form_links:
        config_name = default_config
    cfg = load_etl_config(config_name) if config_name else {}
    user = (cfg.get("user_full_name") or params.get("user_full_name") or "").strip()
    if not user:
        raise ValueError("no author: set user_full_name in the form or the config")
    links = list(dict.fromkeys([*(str(x).strip() for x in cfg.get("links") or []), *form_links]))
    extra: list[str] = []
    for key, value in sorted((cfg.get("settings") or {}).items()):
        extra += ["--setting", f"{key}={value}"]
    return [["etl", "crawl", "--user", user, "--link", link, *extra] for link in links if link]


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

        return plan(params or {}, Variable.get("twin_etl_default_config", default=None))

    crawl = twin_step_mapped("crawl", profile="cpu", max_active_tis_per_dagrun=CRAWLS_IN_PARALLEL).expand(
        arguments=plan_crawls()
    )
    validate = twin_step("validate_raw", ["validate", "raw"], profile="cpu", outlets=[RAW], trigger_rule="all_done")
    crawl >> validate


twin_etl()
