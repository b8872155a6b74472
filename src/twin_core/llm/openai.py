"""The OpenAI-compatible HTTP backend: OpenAI, vLLM, KServe's Hugging Face runtime, Ollama.

``POST {base_url}/chat/completions`` with the chat messages; the server applies the model's chat
template. Connection errors, timeouts, 429 and 5xx are retried with backoff; then a clear
BackendUnavailable names the endpoint and the setting to fix.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests

from twin_core.errors import BackendUnavailable, ConfigError, InputError
from twin_core.llm.base import Generation, Messages
from twin_core.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
_MALFORMED_URL = (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL)


def check_base_url(url: str, setting: str = "TWIN_LLM_BASE_URL") -> str:
    """``url`` when it is an http(s) URL with a host; else a ConfigError naming ``setting``, before any
    request (a malformed URL is a setting to fix, not an endpoint to retry)."""
    from urllib.parse import urlsplit

    text = url.strip()
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and text.split() == [text]
        parts.port  # noqa: B018 -- raises ValueError on a port that is no number in 0-65535
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"{setting} {url!r}: expected an http(s) URL with a host, e.g. http://host:8000/v1")
    return text


class OpenAICompatibleLLM:
    """Chat completions over HTTP. Token counts come from the server's ``usage`` block."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        model_version: str | None = None,
        setting: str = "TWIN_LLM_BASE_URL",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.setting = setting  # the variable that named this endpoint, for the messages
        self.model = model
        self.model_version = model_version or model
        self.timeout_s = timeout_s
        self.retries = retries
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleLLM:
        if not settings.llm.base_url:
            raise ConfigError("TWIN_LLM_BASE_URL: required when TWIN_LLM_BACKEND=openai (e.g. http://host:8000/v1)")
        return cls(
            check_base_url(settings.llm.base_url),
            settings.llm.api_model or settings.llm.model_id,
            api_key=settings.llm.api_key.get_secret_value() if settings.llm.api_key else None,
            timeout_s=settings.llm.timeout_s,
            retries=settings.llm.retries,
            model_version=settings.llm.model_version,
        )

    def count_tokens(self, text: str) -> int:
        # No tokenizer of the remote model here: ~4 characters per token is the usual English estimate.
        return max(1, (len(text) + 3) // 4) if text else 0

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max_tokens * 4]

    def _post(self, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
            try:
                resp = self._session.post(url, json=body, timeout=timeout_s)
            except _MALFORMED_URL:  # retrying cannot help (a URL not from from_settings, e.g. the judge's)
                raise ConfigError(f"LLM endpoint {url!r}: not a valid http(s) URL") from None
            except requests.RequestException as exc:
                last = type(exc).__name__
                log.warning("LLM endpoint %s: %s (attempt %d/%d)", url, last, attempt + 1, self.retries + 1)
                continue
            if resp.status_code in RETRYABLE_STATUS:
                last = f"HTTP {resp.status_code}"
                log.warning("LLM endpoint %s: %s (attempt %d/%d)", url, last, attempt + 1, self.retries + 1)
                continue
            if resp.status_code >= 400:
                raise InputError(f"LLM endpoint {url} refused the request: HTTP {resp.status_code} {resp.text[:200]}")
            try:
                return resp.json()
            except ValueError:
                raise BackendUnavailable(f"LLM endpoint {url} answered with non-JSON") from None
        raise BackendUnavailable(
            f"LLM endpoint {url} unavailable after {self.retries + 1} attempts ({last}); check {self.setting}"
        )

    def chat(
        self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0, timeout_s: float | None = None
    ) -> Generation:
        started = time.perf_counter()
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": False,
        }
        data = self._post("/chat/completions", body, timeout_s or self.timeout_s)
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendUnavailable(f"LLM endpoint {self.base_url} returned no choices: {str(data)[:200]}") from None
        usage = data.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = sum(self.count_tokens(m.get("content", "")) for m in messages)
        completion_tokens = usage.get("completion_tokens")
        if completion_tokens is None:
            completion_tokens = self.count_tokens(text)
        return Generation(
            text=text.strip(),
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            model_version=self.model_version,
            seconds=time.perf_counter() - started,
        )
