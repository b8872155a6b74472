"""Settings from environment variables prefixed ``TWIN_`` and an optional ``.env`` file.

Every store is selected here: a URI means the real backend, unset means the embedded default under
``TWIN_HOME``, in local mode only: in kubernetes mode a pod's TWIN_HOME is deleted with the pod, so opening
an embedded store there is a ConfigError (``stores/embedded.py``, checked when a store is opened, not here:
commands that open no store still run). Nothing is opened or created at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin_core.errors import ConfigError

ENV_PREFIX = "TWIN_"


def _group_config(prefix: str) -> SettingsConfigDict:
    # A variable set but empty (`TWIN_LLM_MODELS_DIR=`) means the default: read as a value it would be
    # Path(".") for a folder (a 270 MB model converted into the working directory) or "" for a name.
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )


class _Group(BaseSettings):
    """A stage's settings: its own ``TWIN_<STAGE>_`` prefix, so every variable keeps its flat name."""


class CrawlSettings(_Group):
    """ETL crawling (twin etl crawl). Variables ``TWIN_CRAWL_*``."""

    model_config = _group_config("TWIN_CRAWL_")

    user_agent: str = "LLMTwinBot/0.1 (+https://github.com/llm-twin/llm-twin)"
    timeout_s: float = Field(15.0, gt=0, description="Connect and read timeout per request.")
    max_retries: int = Field(2, ge=0, description="Retries on 5xx, timeouts and connection errors.")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry.")
    max_bytes: int = Field(5_000_000, gt=0, description="Largest response body read (streamed).")
    max_redirects: int = Field(5, ge=0)
    concurrency: int = Field(4, ge=1, description="Links crawled at once in one run.")
    per_domain_concurrency: int = Field(2, ge=1, description="Requests in flight per domain.")
    respect_robots: bool = True
    allow_hosts: str = Field("", description="Comma-separated hosts/IPs/CIDRs exempt from the SSRF guard.")
    allow_private: bool = Field(False, description="Allow every private/loopback target (trusted nets).")
    allow_local_repos: bool | None = Field(
        None,
        description="Allow file:// and local paths for git repos. Unset: on in local mode, off in kubernetes "
        "mode (Settings.local_repos_allowed).",
    )
    repo_max_file_bytes: int = Field(200_000, gt=0)
    repo_max_files: int = Field(500, gt=0)
    repo_ignore: str = Field("", description="Extra comma-separated glob patterns to skip in repos.")
    git_timeout_s: float = Field(120.0, gt=0)


class SourceSettings(_Group):
    """Platform endpoints, logins and the headless browser (Medium, LinkedIn). Variables ``TWIN_*``."""

    model_config = _group_config("TWIN_")

    medium_base_url: str = "https://medium.com"
    linkedin_base_url: str = "https://www.linkedin.com"
    linkedin_username: str | None = None
    linkedin_password: SecretStr | None = None
    linkedin_li_at: SecretStr | None = Field(None, description="li_at session cookie (instead of a password).")
    linkedin_max_posts: int = Field(20, ge=1)
    linkedin_max_scrolls: int = Field(5, ge=0)
    linkedin_scroll_wait_s: float = Field(3.0, gt=0, description="Wait for the feed's next posts after a scroll.")
    browser_binary: str = "/usr/bin/chromium"
    browser_driver: str = "/usr/bin/chromedriver"
    browser_timeout_s: float = Field(30.0, gt=0)


class ValidationSettings(_Group):
    """Raw-data validation (twin validate raw). Variables ``TWIN_VALIDATE_*``."""

    model_config = _group_config("TWIN_VALIDATE_")

    min_chars: int = Field(40, ge=0, description="Shortest acceptable document text.")
    max_chars: int = Field(2_000_000, gt=0, description="Longest acceptable document text.")
    max_failure_ratio: float = Field(0.2, ge=0, le=1, description="Fail the step above this ratio.")


class FeatureSettings(_Group):
    """Clean, chunk, embed (twin features run). Variables ``TWIN_FEATURES_*``."""

    model_config = _group_config("TWIN_FEATURES_")

    pii_policy: Literal["redact", "keep"] = Field(
        "redact", description="redact = e-mails and phone numbers become [EMAIL] / [PHONE]; keep = untouched."
    )
    chunk_tokens: int = Field(
        256, ge=16, description="Chunk size in tokens incl. special tokens; capped at the model's max_seq_length."
    )
    chunk_overlap_tokens: int = Field(32, ge=0, description="Tokens repeated between neighbour chunks.")
    embed_batch_size: int = Field(64, gt=0, description="Texts per model.encode batch.")
    docs_per_batch: int = Field(64, gt=0, description="Documents written (and marked done) together.")
    max_file_bytes: int = Field(200_000, gt=0, description="Repository files above this are skipped.")


class LLMSettings(_Group):
    """LLM backends: local transformers or an OpenAI-compatible endpoint. Variables ``TWIN_LLM_*``."""

    model_config = _group_config("TWIN_LLM_")

    model_id: str = Field(
        "smollm2-135m-instruct-gguf",
        description="HF id, local directory, or the packaged SmolLM2 GGUF (default).",
    )
    backend: Literal["local", "openai"] = Field(
        "local", description="local = transformers in-process; openai = any OpenAI-compatible HTTP endpoint."
    )
    models_dir: Path | None = Field(None, description="Converted local models (default: TWIN_HOME/models).")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://host:8000/v1.")
    api_key: SecretStr | None = None
    api_model: str | None = Field(None, description="Model name sent to the endpoint (default: llm_model_id).")
    model_version: str | None = Field(None, description="Reported model version (default: derived from model).")
    timeout_s: float = Field(60.0, gt=0, description="Per HTTP call to the LLM endpoint.")
    retries: int = Field(2, ge=0, description="Retries on connection errors and 5xx/429.")
    max_new_tokens: int = Field(128, gt=0, description="Default answer length in tokens.")
    max_new_tokens_cap: int = Field(512, gt=0, description="Requests asking more are refused.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy (reproducible).")
    threads: int = Field(0, ge=0, description="torch CPU threads for the local LLM (0 = torch default).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where the local LLM runs: auto = a CUDA GPU in bf16 when one is visible, else the CPU; "
        "cpu = always the CPU, in the weights' own dtype; cuda = a CUDA GPU in bf16, an error without one.",
    )
    pack_decode: bool = Field(
        True,
        description="On a CPU, a second copy of the local LLM's weights packed for batched decode steps "
        "(faster steps of 2-16 rows, one more copy of the weights in memory).",
    )
    batch_engines: int = Field(
        0,
        ge=0,
        description="Decode engines a batch job (evaluation, rejected answers) runs side by side on a CPU, "
        "each with its share of the threads and its own key/value cache (0 = one per thread, at most one "
        "per 8 requests; 1 = the least memory).",
    )


class RAGSettings(_Group):
    """Retrieval-augmented generation (twin rag query, twin serve). Variables ``TWIN_RAG_*``."""

    model_config = _group_config("TWIN_RAG_")

    top_k: int = Field(5, gt=0, description="Chunks given to the prompt.")
    candidates: int = Field(20, gt=0, description="Candidates fetched per query before rerank.")
    expansions: int = Field(0, ge=0, description="Alternative queries from the LLM (0 = off).")
    self_query_llm: bool = Field(False, description="Ask the LLM for the author when names do not match.")
    rerank_model: str | None = Field(None, description="CrossEncoder id or folder; unset = MMR re-score.")
    mmr_lambda: float = Field(0.7, ge=0, le=1, description="MMR relevance/diversity trade-off.")
    context_tokens: int = Field(1024, gt=0, description="Token budget of the retrieved context.")


class ServeSettings(_Group):
    """The KServe model server (twin serve). Variables ``TWIN_SERVE_*``."""

    model_config = _group_config("TWIN_SERVE_")

    model_name: str = Field("twin", description="KServe model name in /v1/models/<name>:predict.")
    api_keys: SecretStr | None = Field(None, description='JSON {"api-key": "Author Full Name", ...}.')
    auth_disabled: bool = Field(False, description="Serve without API keys (local only; warns).")
    max_query_chars: int = Field(2000, gt=0)
    max_body_bytes: int = Field(64_000, gt=0)
    request_timeout_s: float = Field(120.0, gt=0)
    max_concurrency: int = Field(8, gt=0, description="Requests processed at once (>= batch_max_size to fill batches).")
    max_queue: int = Field(16, ge=0, description="Requests waiting beyond that; more get 503.")
    retry_after_s: int = Field(5, gt=0)
    batching: bool = Field(True, description="Batch concurrent generations (local predictor); off = one at a time.")
    batch_max_size: int = Field(
        8, gt=0, description="Most requests in one generation batch, and in one retrieval batch (embed + search)."
    )
    batch_window_ms: float = Field(
        50.0, ge=0, description="How long a batch waits for more requests to join (batch_mode=window)."
    )
    batch_mode: Literal["continuous", "window"] = Field(
        "continuous",
        description="continuous: a request joins the running batch at its next decode step; "
        "window: static batches gathered over batch_window_ms.",
    )
    prefix_cache: bool = Field(
        True,
        description="continuous: prefill the prompt start that recent prompts shared (the author's system "
        "prompt) once and reuse its key/value states.",
    )
    registry_poll_s: float = Field(5.0, ge=0, description="Registry poll period in seconds (0 = no polling).")
    faults: dict[str, float] = Field(
        default_factory=dict,
        description='Canary drills: JSON {"<author_slug>/vNNNN": 0.3} fails that share of its generations.',
    )


class MonitorSettings(_Group):
    """Drift monitoring over the inference log (twin monitor drift). Variables ``TWIN_MONITOR_*``."""

    model_config = _group_config("TWIN_MONITOR_")

    window: str = Field("1h", description="Default window length (30m, 1h, 1d...).")
    reference: Literal["previous", "baseline", "training"] = Field(
        "previous",
        description="previous = the window(s) before (alerts); baseline = a pinned window (--baseline-end); "
        "training = informational comparison with the latest instruct dataset (never alerts).",
    )
    previous_windows: int = Field(
        1, ge=1, description="Windows before the current one that form the 'previous' reference."
    )
    min_rows: int = Field(20, ge=2, description="Fewer requests (or reference rows) than this = not enough data.")
    embedding_sample: int = Field(
        150, ge=20, description="Rows per side embedded for the embedding drift (Evidently plots them with t-SNE)."
    )
    config: Path | None = Field(None, description="Signal methods/thresholds YAML (default: configs/monitoring.yaml).")
    alert_repeat_h: float = Field(
        24, ge=0, description="A signal still drifting is alerted again at most every N hours (0 = every window)."
    )


class TrainingSettings(_Group):
    """Fine-tuning (twin train sft|dpo). Variables ``TWIN_TRAINING_*``; the hyperparameters live in profiles."""

    model_config = _group_config("TWIN_TRAINING_")

    profile: str = Field("cpu-tiny", description="Default profile: configs/training/<name>.yaml.")
    profiles_dir: Path | None = Field(None, description="Profile folder (default: the repo's configs/training).")
    max_steps: int = Field(0, ge=0, description="Cap the optimizer steps of every run (0 = the profile's).")
    checkpoint_steps: int = Field(0, ge=0, description="Checkpoint to the artifact store every N steps (0 = profile).")
    keep_checkpoints: int = Field(
        2, ge=1, description="Checkpoints of a run kept in the artifact store (the newest N; older ones deleted)."
    )
    comet_project: str = Field("llm-twin", description="Comet project (online with COMET_API_KEY, else offline).")
    comet_workspace: str | None = Field(None, description="Comet workspace (online only).")
    fused_varlen: bool = Field(
        True, description="Packed rows on a CUDA GPU: torch's fused variable-length kernel (false: SDPA per example)."
    )
    torch_profile: Path | None = Field(
        None,
        description="A folder: torch.profiler records optimizer step 1 and steps 3-4 of each run in <kind>-<run id>.",
    )


class EvaluationSettings(_Group):
    """Evaluation and gate (twin evaluate). Variables ``TWIN_EVAL_*``; thresholds live in configs/evaluation.yaml."""

    model_config = _group_config("TWIN_EVAL_")

    config: Path | None = Field(None, description="Metrics/gate YAML (default: configs/evaluation.yaml).")
    judge: Literal["auto", "off"] = Field("auto", description="auto = judge scores on; off = skip the judge.")
    judge_base_url: str | None = Field(None, description="OpenAI-compatible judge endpoint; unset = the local LLM.")
    judge_model: str | None = Field(None, description="Model name sent to the judge endpoint.")
    judge_api_key: SecretStr | None = None
    comet_project: str = Field("llm-twin-eval", description="Comet project of evaluation reports.")


class DatasetSettings(_Group):
    """Instruction and preference datasets (twin datasets build). Variables ``TWIN_DATASETS_*``."""

    model_config = _group_config("TWIN_DATASETS_")

    strategy: Literal["extractive", "llm"] = Field("extractive", description="extractive = no LLM, no key.")
    seed: int = Field(42, description="Instruction forms and extract sampling.")
    test_percent: int = Field(17, ge=0, le=50, description="Share of documents held out (≈1 in 6, by link hash).")
    min_test_rows: int = Field(20, ge=0, description="Held-out rows wanted (the evaluation's sample), ≤ 40 % of rows.")
    context_tokens: int = Field(
        0, ge=0, description="Budget of each row's retrieved context (~4 chars a token); 0 = TWIN_RAG_CONTEXT_TOKENS."
    )
    min_answer_chars: int = Field(100, ge=1, description="Shorter answers are filtered out.")
    max_answer_chars: int = Field(4000, gt=0, description="Longer answers are filtered out.")
    near_duplicate_jaccard: float = Field(0.8, gt=0, le=1, description="5-gram Jaccard at which two answers are one.")
    decontamination_ngram: int = Field(8, ge=3, description="Train rows sharing this n-gram with test are dropped.")
    max_extracts: int = Field(0, ge=0, description="Extracts per author (0 = all); bounds LLM calls.")
    max_rejected: int = Field(32, ge=0, description="Preference pairs generated per author (model calls).")
    rejected_max_new_tokens: int = Field(96, gt=0, description="Length of the model's (rejected) answers.")
    language: str = Field("en", description="Prose in another language is filtered out.")


class DeploySettings(_Group):
    """Rollouts (twin deploy). Variables ``TWIN_DEPLOY_*``."""

    model_config = _group_config("TWIN_DEPLOY_")

    target: Literal["auto", "local", "kubernetes"] = Field(
        "auto",
        description="local = registry stages; kubernetes = also patch the InferenceService; auto = TWIN_EXECUTION.",
    )
    isvc_name: str = Field("llm-twin", description="The twin's InferenceService (chart: serving.name).")
    namespace: str = Field("llm-twin", description="Its namespace.")
    kubeconfig: Path | None = Field(None, description="Kubeconfig file (default: in-cluster, then ~/.kube/config).")
    config: Path | None = Field(None, description="Watch-window YAML (default: configs/deploy.yaml).")


class Settings(BaseSettings):
    model_config = _group_config(ENV_PREFIX)

    # --- where things live -------------------------------------------------------------------
    home: Path = Field(Path(".twin"), description="Root of every embedded store.")
    mongodb_uri: str | None = Field(
        None, description="mongodb://... selects MongoDB; unset = embedded (refused in kubernetes mode)."
    )
    mongodb_database: str = "twin"
    mongodb_timeout_ms: int = Field(5000, gt=0, description="Server selection / connect timeout.")
    qdrant_url: str | None = Field(
        None, description="http(s)://... selects a Qdrant server; unset = embedded (refused in kubernetes mode)."
    )
    qdrant_api_key: SecretStr | None = None
    qdrant_timeout_s: int = Field(10, gt=0)
    artifacts_uri: str | None = Field(
        None,
        description="s3://bucket/prefix or a local path; unset = TWIN_HOME/artifacts (refused in kubernetes mode).",
    )
    s3_endpoint_url: str | None = Field(None, description="For MinIO and other S3-compatible stores.")

    # --- execution ---------------------------------------------------------------------------
    execution: Literal["local", "kubernetes"] = Field(
        "local",
        description="kubernetes: a pod; its TWIN_HOME is scratch, so no embedded store opens (stores/embedded.py).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    xcom_path: Path = Field(Path("/airflow/xcom/return.json"), description="Result file in a pod.")

    # --- models ------------------------------------------------------------------------------
    embedding_model_id: str = "sentence-transformers/all-MiniLM-L6-v2"
    hf_offline: bool = Field(True, description="Never reach the Hugging Face Hub at run time.")

    # --- one group per stage; each reads its own TWIN_<STAGE>_* variables ------------------
    crawl: CrawlSettings = Field(default_factory=CrawlSettings)
    sources: SourceSettings = Field(default_factory=SourceSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    rag: RAGSettings = Field(default_factory=RAGSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    eval: EvaluationSettings = Field(default_factory=EvaluationSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    datasets: DatasetSettings = Field(default_factory=DatasetSettings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:  # as `--log-level` takes it: TWIN_LOG_LEVEL=debug
        return value.strip().upper() if isinstance(value, str) else value

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

    @property
    def local_repos_allowed(self) -> bool:
        """TWIN_CRAWL_ALLOW_LOCAL_REPOS if set, else only in local mode (a pod's files are not the user's)."""
        explicit = self.crawl.allow_local_repos
        return self.execution == "local" if explicit is None else explicit


GROUPS: dict[str, type[_Group]] = {
    name: field.default_factory  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
    if isinstance(field.default_factory, type) and issubclass(field.default_factory, _Group)
}


def _group_of(flat: str) -> tuple[str, str] | None:
    """``features_chunk_tokens`` -> ("features", "chunk_tokens"): the flat name a variable has."""
    for group, cls in GROUPS.items():
        prefix = cls.model_config["env_prefix"][len(ENV_PREFIX) :].lower()
        if flat.startswith(prefix) and flat[len(prefix) :] in cls.model_fields:
            return group, flat[len(prefix) :]
    return None


def flat_names() -> set[str]:
    """Every setting by its flat name, the variable's name less ``TWIN_`` in lower case."""
    names = {name for name in Settings.model_fields if name not in GROUPS}
    for cls in GROUPS.values():
        prefix = cls.model_config["env_prefix"][len(ENV_PREFIX) :].lower()
        names |= {prefix + name for name in cls.model_fields}
    return names


def _split_overrides(overrides: dict[str, object]) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    root: dict[str, object] = {}
    groups: dict[str, dict[str, object]] = {}
    for key, value in overrides.items():
        where = _group_of(key)
        if where:
            groups.setdefault(where[0], {})[where[1]] = value
        elif key in Settings.model_fields and key not in GROUPS:
            root[key] = value
        else:
            raise ConfigError(f"{ENV_PREFIX}{key.upper()}: no such setting")
    return root, groups


def _build(base: Settings | None, overrides: dict[str, object]) -> Settings:
    root, group_overrides = _split_overrides(overrides)
    for group, cls in GROUPS.items():
        values = group_overrides.get(group, {})
        if base is not None:
            values = {**getattr(base, group).model_dump(), **values}
        if values or base is None:
            try:
                root[group] = cls(**values) if base is None else cls.model_validate(values)
            except ValidationError as exc:
                first = exc.errors()[0]
                env = cls.model_config["env_prefix"] + str(first["loc"][0]).upper()
                raise ConfigError(f"{env}: {first['msg']} (got {first.get('input')!r})") from None
    try:
        if base is None:
            return Settings(**root)
        return Settings.model_validate({**base.model_dump(exclude=set(GROUPS)), **root})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        raise ConfigError(
            f"{ENV_PREFIX}{str(loc[0]).upper() if loc else '?'}: {first['msg']} (got {first.get('input')!r})"
        ) from None


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; ``overrides`` use the variables' flat names (``crawl_timeout_s``).

    A bad value becomes one line that names the variable.
    """
    return _build(None, overrides)


def updated(settings: Settings, **overrides: object) -> Settings:
    """A validated copy of ``settings`` with flat-named overrides (``updated(s, llm_threads=1)``)."""
    return _build(settings, overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return load_settings()
