"""twin_etl's trigger form and its optional YAML config: which `twin etl crawl` commands a run makes.

Config files live in ``configs/etl/`` (found by ``twin_ops.config.find_config``; ``TWIN_ETL_CONFIG_DIR``
overrides). Only file names are accepted from the form, never paths.

Bad form input or a bad config raises ``AirflowFailException``: the task fails at once, without the
retries meant for an unavailable backend, and its message says what to fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from twin_ops.config import find_config

# A config name: a file name from configs/etl/ (the form's Param validates the same pattern).
CONFIG_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_CONFIG_NAME = re.compile(CONFIG_NAME_PATTERN)
DEFAULT_CONFIG_VARIABLE = "twin_etl_default_config"


def etl_config_dir() -> Path:
    return find_config("etl", "TWIN_ETL_CONFIG_DIR")


def available_configs() -> list[str]:
    """Config names offered in the form (a directory listing: cheap at parse time)."""
    folder = etl_config_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _known() -> str:
    return ", ".join(available_configs()) or "none"


def load_etl_config(name: str) -> dict[str, Any]:
    """The mapping in ``configs/etl/<name>.yaml``, checked; AirflowFailException for a bad name, a missing
    or unreadable file, or a field of the wrong type."""
    import yaml

    if not _CONFIG_NAME.match(name):
        raise AirflowFailException(
            f"invalid config name {name!r}: give a file name from configs/etl/, no path (available: {_known()})"
        )
    path = etl_config_dir() / f"{name.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        raise AirflowFailException(f"ETL config {name!r} not found in {etl_config_dir()} (available: {_known()})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AirflowFailException(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise AirflowFailException(f"{path}: expected a mapping (user_full_name, links, settings)")
    if not isinstance(data.get("user_full_name") or "", str):
        raise AirflowFailException(f"{path}: user_full_name must be a string")
    links = data.get("links") or []
    if not isinstance(links, list) or not all(isinstance(x, str) for x in links):
        raise AirflowFailException(f"{path}: links must be a list of URLs")
    if not isinstance(data.get("settings") or {}, dict):
        raise AirflowFailException(f"{path}: settings must be a mapping of setting names to values")
    return data


def author_key(name: str) -> str:
    """The author a name stands for, as twin_core identifies users (``user_id``): whitespace collapsed,
    case folded. "ada  QUILLFEATHER" and "Ada Quillfeather" are one author."""
    return " ".join(name.split()).casefold()


def plan(params: dict[str, Any], default_config: str | None = None, *, manual: bool = False) -> list[list[str]]:
    """One `twin etl crawl` argument list per unique link (XCom carries only the links).

    The form's links are added to the config's, crawled under the one author both name (the form's
    ``user_full_name`` may be left empty to use the config's). A run with neither a config nor links uses
    ``default_config`` (the Airflow Variable ``twin_etl_default_config``); with none of them, a scheduled or
    backfill run crawls nothing. These fail (AirflowFailException, no retry), saying what to fix: a manual
    run (``manual``) or an author with nothing to crawl, a form author other than the config's, links
    without an author, a config that cannot be read or that lists no links."""
    config_name = (params.get("config") or "").strip() or None
    form_links = [str(x).strip() for x in params.get("links") or [] if str(x).strip()]
    form_user = " ".join(str(params.get("user_full_name") or "").split())
    from_variable = False
    if not config_name and not form_links:  # the default config: a scheduled run's, or an empty trigger form's
        config_name = (default_config or "").strip() or None
        from_variable = config_name is not None
        if not config_name and (manual or form_user):
            named = f" for {form_user!r}" if form_user else ""
            raise AirflowFailException(
                f"nothing to crawl{named}: fill `links` in the trigger form, name a `config` from configs/etl/ "
                f"(available: {_known()}) or set the Airflow Variable {DEFAULT_CONFIG_VARIABLE}; nothing was crawled"
            )
    if not config_name:
        if not form_links:
            return []  # the weekly run with no default config: nothing to crawl
        cfg: dict[str, Any] = {}
    else:
        try:
            cfg = load_etl_config(config_name)
        except AirflowFailException as exc:
            if from_variable:
                raise AirflowFailException(f"Airflow Variable {DEFAULT_CONFIG_VARIABLE}: {exc}") from None
            raise
    where = f"Airflow Variable {DEFAULT_CONFIG_VARIABLE}: " if from_variable else ""
    config_user = " ".join((cfg.get("user_full_name") or "").split())
    if form_user and config_user and author_key(form_user) != author_key(config_user):
        raise AirflowFailException(
            f"{where}the form names the author {form_user!r} but ETL config {config_name!r} crawls "
            f"{config_user!r}'s links: leave `user_full_name` empty to crawl the config as {config_user!r}, or "
            f"leave `config` empty to crawl the form's links as {form_user!r}; nothing was crawled"
        )
    links = list(dict.fromkeys([*(x.strip() for x in cfg.get("links") or []), *form_links]))
    links = [link for link in links if link]
    if not links:
        raise AirflowFailException(
            f"{where}ETL config {config_name!r} lists no links and the form has none: add `links` to the "
            "config or fill `links` in the trigger form"
        )
    user = config_user or form_user
    if not user:
        source = f"ETL config {config_name!r} sets no user_full_name; " if config_name else ""
        raise AirflowFailException(
            f"no author for {len(links)} link(s): {source}fill `user_full_name` in the trigger form with the "
            "full name of the person who wrote them (their documents are stored under that name); "
            "nothing was crawled"
        )
    extra: list[str] = []
    for key, value in sorted((cfg.get("settings") or {}).items()):
        extra += ["--setting", f"{key}={value}"]
    return [["etl", "crawl", "--user", user, "--link", link, *extra] for link in links]


def documents_changed(results: list[dict[str, Any] | None] | None) -> int:
    """Documents created or updated by the crawl tasks (their JSON results); failed tasks push nothing."""
    changed = 0
    for result in results or []:
        totals = (result or {}).get("totals") or {}
        changed += int(totals.get("documents_created", 0)) + int(totals.get("documents_updated", 0))
    return changed
