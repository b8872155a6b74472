"""`twin serve`: the KServe model server of the twin.

Components:
- ``all`` (local default): transformer ``twin`` + predictor ``twin-llm`` in one process; the
  transformer calls the predictor in-process (no HTTP hop).
- ``transformer``: RAG only; the LLM is ``--predictor-host`` (KServe v1, e.g. the predictor container
  of the same InferenceService) or, with TWIN_LLM_BACKEND=openai, any OpenAI-compatible endpoint
  (KServe's Hugging Face runtime / vLLM).
- ``predictor``: the LLM only, under the same model name (KServe routes transformer -> predictor by
  name).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
from dataclasses import dataclass
from typing import Any, Literal

from twin_core.errors import ConfigError
from twin_core.serving.kserve_import import import_kserve
from twin_core.settings import Settings

kserve = import_kserve()
log = logging.getLogger(__name__)

Component = Literal["all", "transformer", "predictor"]


@dataclass
class ServeReport:
    host: str
    port: int
    component: str
    models: list[str]


class TwinModelServer(kserve.ModelServer):
    """KServe's ModelServer (registry, DataPlane, model lifecycle), served on a chosen host, or on an inherited
    listening socket ``fd`` (``twin serve --fd``; ``host`` and ``port`` are then that socket's address)."""

    def __init__(self, host: str, port: int, predictor_config: Any | None = None, *, fd: int | None = None) -> None:
        super().__init__(http_port=port, enable_grpc=False, workers=1, predictor_config=predictor_config)
        self.host = host
        self.fd = fd
        self._uvicorn: Any = None

    def start_app(self, models: list[Any], app_factory: Any) -> None:
        import uvicorn

        self._register_and_check_atleast_one_model_is_ready(models)
        app = app_factory(self)
        # the inherited socket, or a socket uvicorn binds itself
        where: dict[str, Any] = {"fd": self.fd} if self.fd is not None else {"host": self.host, "port": self.http_port}
        config = uvicorn.Config(
            app,
            **where,
            log_config=None,
            timeout_graceful_shutdown=self.grace_period,
            timeout_keep_alive=self.timeout_keep_alive,
            loop="asyncio",
        )
        self._uvicorn = uvicorn.Server(config)

        async def serve() -> None:
            workers = self.max_asyncio_workers or 8
            asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(workers))
            for model in models:  # e.g. the predictor's registry poll
                if hasattr(model, "start_background"):
                    model.start_background()
            await self._uvicorn.serve()  # uvicorn handles SIGINT/SIGTERM: graceful shutdown

        # uvicorn captures SIGINT/SIGTERM while serving, then re-raises them to the previous handlers:
        # no-op handlers there let `twin serve` return normally and print its result line.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        try:
            asyncio.run(serve())
        except SystemExit as exc:  # uvicorn exits (code 3) when it cannot bind: a JSON error line instead
            if self._uvicorn.started:
                raise
            option = "--host/--port" if self.fd is None else f"--fd {self.fd}"
            raise ConfigError(
                f"{option}: the HTTP server could not start on {self.host}:{self.http_port} (uvicorn exit "
                f"{exc.code}; its error is logged above, e.g. the address is already in use)"
            ) from None
        finally:
            for name in list(self.registered_models.get_models()):
                self.registered_models.unload(name)


def build_models(
    settings: Settings,
    component: Component,
    model_name: str,
    *,
    auth_disabled: bool,
    authors: list[str] | None = None,
) -> tuple[list[Any], Any | None]:
    """Load the models of ``component``; returns (models, transformer or None).

    In one process (``all``) the predictor serves per author the registry's production version
    (and canary) of ``authors``, else the base model. A ``predictor`` container serves the model it
    was given (on a cluster, KServe's storageUri and canaryTrafficPercent choose the version).
    """
    from twin_core.serving.predictor import TwinPredictor
    from twin_core.serving.transformer import TwinTransformer

    if component == "predictor":
        predictor = TwinPredictor(model_name, settings)
        predictor.load()
        return [predictor], None
    local = None
    remote = None
    if settings.llm.backend == "openai":
        from twin_core.llm import open_llm

        remote = open_llm(settings)
    elif component == "all":
        local = TwinPredictor(f"{model_name}-llm", settings, authors=authors)
        local.load()
        if local.pool is not None:
            serve = settings.serve
            if not serve.batching:
                mode = "one at a time (TWIN_SERVE_BATCHING=false)"
            elif serve.batch_mode == "continuous":
                mode = f"continuous batching, up to {serve.batch_max_size} rows"
            else:
                mode = f"batched by window, up to {serve.batch_max_size} per {serve.batch_window_ms:.0f} ms"
            log.info("generation: %s; registry poll every %s s", mode, serve.registry_poll_s or "never")
            for author in authors or []:
                if author not in local.pool.routes:
                    log.info("%s: serving the base model %s", author, local.pool.base.version)
    transformer = TwinTransformer(
        model_name, settings, local_predictor=local, remote_llm=remote, auth_disabled=auth_disabled
    )
    transformer.load()
    return ([transformer] + ([local] if local else [])), transformer


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    component: Component = "all",
    predictor_host: str | None = None,
    model_name: str | None = None,
    fd: int | None = None,
) -> ServeReport:
    """Load the models and serve until SIGINT/SIGTERM: on ``host:port``, or on the inherited listening socket
    ``fd`` (whose address the caller passes as ``host`` and ``port``, for the logs and the report)."""
    from kserve import PredictorConfig

    from twin_core.serving.app import build_app
    from twin_core.serving.auth import load_auth
    from twin_core.stores.warehouse import open_warehouse

    name = model_name or settings.serve.model_name
    if component == "transformer" and not predictor_host and settings.llm.backend != "openai":
        raise ConfigError("--predictor-host is required for --component transformer (or TWIN_LLM_BACKEND=openai)")
    authors = [u.full_name for u in open_warehouse(settings).users()]
    auth = load_auth(settings, authors)
    if not auth.disabled:
        log.info("API keys loaded for %d author(s): %s", len(auth.authors), ", ".join(auth.authors))
    predictor_config = PredictorConfig(
        predictor_host=predictor_host,
        predictor_protocol="v1",
        predictor_request_timeout_seconds=int(settings.serve.request_timeout_s),
    )
    server = TwinModelServer(host, port, predictor_config, fd=fd)
    models, transformer = build_models(settings, component, name, auth_disabled=auth.disabled, authors=authors)
    names = [m.name for m in models]
    on = f" (inherited socket, --fd {fd})" if fd is not None else ""
    log.info("twin serve: %s on http://%s:%d%s (models: %s)", component, host, port, on, ", ".join(names))
    server.start_app(models, lambda srv: build_app(srv, settings, auth, transformer))
    return ServeReport(host, port, component, names)
