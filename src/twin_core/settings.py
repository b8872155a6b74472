"""Settings from environment variables prefixed ``TWIN_`` and an optional ``.env`` file.

Every store is selected here: a URI means the real backend, unset means the embedded default under
``TWIN_HOME``. Nothing is opened or created at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin_core.errors import ConfigError

ENV_PREFIX = "TWIN_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- where things live -------------------------------------------------------------------
    home: Path = Field(Path(".twin"), description="Root of every embedded store.")
    mongodb_uri: str | None = Field(None, description="mongodb://... selects MongoDB; unset = embedded.")
    mongodb_database: str = "twin"
    mongodb_timeout_ms: int = Field(5000, gt=0, description="Server selection / connect timeout.")
    qdrant_url: str | None = Field(None, description="http(s)://... selects a Qdrant server.")
    qdrant_api_key: SecretStr | None = None
    qdrant_timeout_s: int = Field(10, gt=0)
    artifacts_uri: str | None = Field(None, description="s3://bucket/prefix or a local path.")
    s3_endpoint_url: str | None = Field(None, description="For MinIO and other S3-compatible stores.")

    # --- execution ---------------------------------------------------------------------------
    execution: Literal["local", "kubernetes"] = "local"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    xcom_path: Path = Field(Path("/airflow/xcom/return.json"), description="Result file in a pod.")

    # --- models ------------------------------------------------------------------------------
    embedding_model_id: str = "sentence-transformers/all-MiniLM-L6-v2"
    llm_model_id: str = Field(
        "smollm2-135m-instruct-gguf",
        description="HF id, local directory, or the packaged SmolLM2 GGUF (default).",
    )
    hf_offline: bool = Field(True, description="Never reach the Hugging Face Hub at run time.")

    # --- ETL: crawling (twin etl crawl) --------------------------------------------------------
    crawl_user_agent: str = "LLMTwinBot/0.1 (+https://github.com/llm-twin/llm-twin)"
    crawl_timeout_s: float = Field(15.0, gt=0, description="Connect and read timeout per request.")
    crawl_max_retries: int = Field(2, ge=0, description="Retries on 5xx, timeouts and connection errors.")
    crawl_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry.")
    crawl_max_bytes: int = Field(5_000_000, gt=0, description="Largest response body read (streamed).")
    crawl_max_redirects: int = Field(5, ge=0)
    crawl_concurrency: int = Field(4, ge=1, description="Links crawled at once in one run.")
    crawl_per_domain_concurrency: int = Field(2, ge=1, description="Requests in flight per domain.")
    crawl_respect_robots: bool = True
    crawl_allow_hosts: str = Field("", description="Comma-separated hosts/IPs/CIDRs exempt from the SSRF guard.")
    crawl_allow_private: bool = Field(False, description="Allow every private/loopback target (trusted nets).")
    crawl_allow_local_repos: bool = Field(True, description="Allow file:// and local paths for git repos.")
    crawl_repo_max_file_bytes: int = Field(200_000, gt=0)
    crawl_repo_max_files: int = Field(500, gt=0)
    crawl_repo_ignore: str = Field("", description="Extra comma-separated glob patterns to skip in repos.")
    crawl_git_timeout_s: float = Field(120.0, gt=0)
    medium_base_url: str = "https://medium.com"
    linkedin_base_url: str = "https://www.linkedin.com"
    linkedin_username: str | None = None
    linkedin_password: SecretStr | None = None
    linkedin_li_at: SecretStr | None = Field(None, description="li_at session cookie (instead of a password).")
    linkedin_max_posts: int = Field(20, ge=1)
    linkedin_max_scrolls: int = Field(5, ge=0)
    browser_binary: str = "/usr/bin/chromium"
    browser_driver: str = "/usr/bin/chromedriver"
    browser_timeout_s: float = Field(30.0, gt=0)
    # --- ETL: validation (twin validate raw) ---------------------------------------------------
    validate_min_chars: int = Field(40, ge=0, description="Shortest acceptable document text.")
    validate_max_chars: int = Field(2_000_000, gt=0, description="Longest acceptable document text.")
    validate_max_failure_ratio: float = Field(0.2, ge=0, le=1, description="Fail the step above this ratio.")

    # --- features: clean, chunk, embed (twin features run) --------------------------------------
    features_pii_policy: Literal["redact", "keep"] = Field(
        "redact", description="redact = e-mails and phone numbers become [EMAIL] / [PHONE]; keep = untouched."
    )
    features_chunk_tokens: int = Field(
        256, ge=16, description="Chunk size in tokens incl. special tokens; capped at the model's max_seq_length."
    )
    features_chunk_overlap_tokens: int = Field(32, ge=0, description="Tokens repeated between neighbour chunks.")
    features_embed_batch_size: int = Field(64, gt=0, description="Texts per model.encode batch.")
    features_docs_per_batch: int = Field(64, gt=0, description="Documents written (and marked done) together.")
    features_max_file_bytes: int = Field(200_000, gt=0, description="Repository files above this are skipped.")

    # --- inference: LLM backends and RAG (twin rag query, twin serve) ---------------------------
    llm_backend: Literal["local", "openai"] = Field(
        "local", description="local = transformers in-process; openai = any OpenAI-compatible HTTP endpoint."
    )
    llm_models_dir: Path | None = Field(None, description="Converted local models (default: TWIN_HOME/models).")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://host:8000/v1.")
    llm_api_key: SecretStr | None = None
    llm_api_model: str | None = Field(None, description="Model name sent to the endpoint (default: llm_model_id).")
    llm_model_version: str | None = Field(None, description="Reported model version (default: derived from model).")
    llm_timeout_s: float = Field(60.0, gt=0, description="Per HTTP call to the LLM endpoint.")
    llm_retries: int = Field(2, ge=0, description="Retries on connection errors and 5xx/429.")
    llm_max_new_tokens: int = Field(128, gt=0, description="Default answer length in tokens.")
    llm_max_new_tokens_cap: int = Field(512, gt=0, description="Requests asking more are refused.")
    llm_temperature: float = Field(0.0, ge=0, description="0 = greedy (reproducible).")
    llm_threads: int = Field(0, ge=0, description="torch CPU threads for the local LLM (0 = torch default).")
    rag_top_k: int = Field(5, gt=0, description="Chunks given to the prompt.")
    rag_candidates: int = Field(20, gt=0, description="Candidates fetched per query before rerank.")
    rag_expansions: int = Field(0, ge=0, description="Alternative queries from the LLM (0 = off).")
    rag_self_query_llm: bool = Field(False, description="Ask the LLM for the author when names do not match.")
    rag_rerank_model: str | None = Field(None, description="CrossEncoder id or folder; unset = MMR re-score.")
    rag_mmr_lambda: float = Field(0.7, ge=0, le=1, description="MMR relevance/diversity trade-off.")
    rag_context_tokens: int = Field(1024, gt=0, description="Token budget of the retrieved context.")
    # --- serving: twin serve (KServe model server) ----------------------------------------------
    serve_model_name: str = Field("twin", description="KServe model name in /v1/models/<name>:predict.")
    serve_api_keys: SecretStr | None = Field(None, description='JSON {"api-key": "Author Full Name", ...}.')
    serve_auth_disabled: bool = Field(False, description="Serve without API keys (local only; warns).")
    serve_max_query_chars: int = Field(2000, gt=0)
    serve_max_body_bytes: int = Field(64_000, gt=0)
    serve_request_timeout_s: float = Field(120.0, gt=0)
    serve_max_concurrency: int = Field(2, gt=0, description="Requests processed at once.")
    serve_max_queue: int = Field(16, ge=0, description="Requests waiting beyond that; more get 503.")
    serve_retry_after_s: int = Field(5, gt=0)

    @field_validator("mongodb_uri")
    @classmethod
    def _mongo_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value or None

    @field_validator("qdrant_url")
    @classmethod
    def _qdrant_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    # --- derived paths -----------------------------------------------------------------------
    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse"

    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def artifacts_location(self) -> str:
        return self.artifacts_uri or str(self.home / "artifacts")

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


def _field_env_name(loc: tuple) -> str:
    return ENV_PREFIX + str(loc[0]).upper() if loc else ENV_PREFIX + "?"


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{_field_env_name(first['loc'])}: {first['msg']} (got {first.get('input')!r})") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return load_settings()
