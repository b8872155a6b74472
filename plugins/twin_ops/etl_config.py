"""twin_etl's trigger form and its optional YAML config: which `twin etl crawl` commands a run makes.

Config files live in ``configs/etl/`` (found by ``twin_ops.config.find_config``; ``TWIN_ETL_CONFIG_DIR``
overrides). Only file names are accepted from the form, never paths.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twin_ops.config import find_config

_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def etl_config_dir() -> Path:
    return find_config("etl", "TWIN_ETL_CONFIG_DIR")


def available_configs() -> list[str]:
    """Config names offered in the form (a directory listing: cheap at parse time)."""
    folder = etl_config_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_etl_config(name: str) -> dict[str, Any]:
    """The mapping in ``configs/etl/<name>.yaml``; ValueError for a bad name, a missing file or no mapping."""
    import yaml

    if not _CONFIG_NAME.match(name):
        raise ValueError(f"invalid config name {name!r} (a file name from configs/etl/, no path)")
    path = etl_config_dir() / f"{name.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        raise ValueError(f"ETL config {name!r} not found in {etl_config_dir()}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def plan(params: dict[str, Any], default_config: str | None = None) -> list[list[str]]:
    """One `twin etl crawl` argument list per unique link (XCom carries only the links).

    The form's links are added to the config's; the config's author wins. With neither a config nor
    links (a scheduled or backfill run), ``default_config`` is used; with none of them, no crawl."""
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


def documents_changed(results: list[dict[str, Any] | None] | None) -> int:
    """Documents created or updated by the crawl tasks (their JSON results); failed tasks push nothing."""
    changed = 0
    for result in results or []:
        totals = (result or {}).get("totals") or {}
        changed += int(totals.get("documents_created", 0)) + int(totals.get("documents_updated", 0))
    return changed
