"""API keys: a bearer key maps to exactly one author, whose content alone that key may query.

Keys come from TWIN_SERVE_API_KEYS (JSON ``{"key": "Author Full Name"}``, e.g. from a Kubernetes
Secret) or, locally, from ``TWIN_HOME/serving/api_keys.json``: when neither exists and the warehouse
has exactly one author, one key is generated, stored there (mode 0600) and printed once.
Only SHA-256 digests of keys are kept in memory; keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from twin_core.errors import ConfigError
from twin_core.settings import Settings

log = logging.getLogger(__name__)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class Auth:
    disabled: bool = False
    _authors: dict[str, str] = field(default_factory=dict)  # sha256(key) -> author full name

    @classmethod
    def from_mapping(cls, keys: dict[str, str]) -> Auth:
        return cls(False, {_digest(k): v for k, v in keys.items()})

    @property
    def authors(self) -> list[str]:
        return sorted(set(self._authors.values()))

    def author_for(self, authorization: str | None) -> str | None:
        """The author of a ``Bearer <key>`` header, or None when the key is missing or unknown."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        wanted = _digest(token.strip())
        for digest, author in self._authors.items():
            if hmac.compare_digest(digest, wanted):
                return author
        return None


def key_file(settings: Settings) -> Path:
    return settings.home / "serving" / "api_keys.json"


def _parse(raw: str, source: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f'{source}: expected a JSON object {{"api-key": "Author Full Name"}}')
    for key, author in data.items():
        if not isinstance(key, str) or len(key) < 16 or not isinstance(author, str) or not author.strip():
            raise ConfigError(f"{source}: every key must be a string of 16+ characters mapped to an author name")
    return data


def load_auth(settings: Settings, authors: list[str]) -> Auth:
    """Auth as configured; may generate the local key (see module doc)."""
    if settings.serve.auth_disabled:
        log.warning(
            "API keys are DISABLED (TWIN_SERVE_AUTH_DISABLED=1): anyone reaching this port can query any author"
        )
        return Auth(disabled=True)
    if settings.serve.api_keys is not None:
        return Auth.from_mapping(_parse(settings.serve.api_keys.get_secret_value(), "TWIN_SERVE_API_KEYS"))
    path = key_file(settings)
    if path.is_file():
        return Auth.from_mapping(_parse(path.read_text(), str(path)))
    if len(authors) != 1:
        raise ConfigError(
            "TWIN_SERVE_API_KEYS: no API keys configured and the warehouse has "
            f"{len(authors)} authors; set TWIN_SERVE_API_KEYS or TWIN_SERVE_AUTH_DISABLED=1 for local tests"
        )
    key = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({key: authors[0]}, fh)
    # Printed once, on the terminal only (stderr), never through the logging system.
    print(f"\ntwin serve: generated an API key for {authors[0]} (stored in {path}):\n  {key}\n", file=sys.stderr)
    return Auth.from_mapping({key: authors[0]})


def read_local_key(settings: Settings) -> str | None:
    """The locally generated key (for the demo on the same machine)."""
    path = key_file(settings)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return next(iter(data), None)
