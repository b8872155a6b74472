"""ETL run configuration files (configs/etl/*.yaml): the author, the links and optional crawl settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from twin_core.errors import InputError
from twin_core.settings import flat_names

_KEYS = {"user_full_name", "links", "settings", "description"}
# Secrets never live in a config file checked into a repository: they come from the environment.
_SECRET_FIELDS = {"linkedin_password", "linkedin_li_at", "qdrant_api_key"}


@dataclass
class EtlConfig:
    user_full_name: str | None = None
    links: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def parse_setting_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (``--setting crawl_max_bytes=100000``) into settings overrides."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower().removeprefix("twin_")
        if not sep or not key:
            raise InputError(f"--setting {pair!r}: expected key=value")
        out[key] = value
    return check_setting_keys(out, "--setting")


def check_setting_keys(values: dict[str, Any], origin: str) -> dict[str, Any]:
    unknown = sorted(set(values) - flat_names())
    if unknown:
        raise InputError(f"{origin}: unknown setting(s) {', '.join(unknown)}")
    secrets = sorted(set(values) & _SECRET_FIELDS)
    if secrets:
        raise InputError(f"{origin}: {', '.join(secrets)} must come from the environment or a secret, not a file")
    return values


def load_config(path: Path) -> EtlConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"ETL config {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"ETL config {path} is not a file (give the path of a YAML file)") from None
    except OSError as exc:  # unreadable (permissions, a broken mount): the cause, not a traceback
        raise InputError(f"ETL config {path} cannot be read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"ETL config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"ETL config {path}: expected a mapping with user_full_name and links")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InputError(f"ETL config {path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    links = data.get("links") or []
    if not isinstance(links, list) or not all(isinstance(x, str) for x in links):
        raise InputError(f"ETL config {path}: links must be a list of strings")
    overrides = data.get("settings") or {}
    if not isinstance(overrides, dict):
        raise InputError(f"ETL config {path}: settings must be a mapping")
    user = data.get("user_full_name")
    if user is not None and not isinstance(user, str):
        raise InputError(f"ETL config {path}: user_full_name must be a string")
    return EtlConfig(user_full_name=user, links=links, settings=check_setting_keys(dict(overrides), str(path)))
