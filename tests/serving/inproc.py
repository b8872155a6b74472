"""The real `twin serve` app (KServe routes, gateway, metrics, OpenAI route) in-process, around fakes: a
pipeline without stores (retrieval returns no chunks, the prompt is the query) and an LLM that answers
``"hello world"`` through the real predictor, pool and batcher. No model, no store, no port: requests go
through ``httpx.ASGITransport`` or straight to the ASGI app."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twin_core.domain.documents import UserDocument
from twin_core.errors import BackendUnavailable, InputError
from twin_core.inference.pipeline import Prepared, RAGPipeline, RAGRequest, Retrieval, validate_request
from twin_core.llm.base import Generation
from twin_core.llm.prompt import Prompt
from twin_core.settings import Settings, load_settings

ADA_KEY = "ada-key-0123456789abcdef"
ADA = "Ada Quillfeather"
HEADERS = {"Authorization": f"Bearer {ADA_KEY}", "Content-Type": "application/json"}
BASE_VERSION = "fake-llm:v1"
BOOM = "boom"  # the query the fake pipeline fails with a RuntimeError
DOWN = "down"  # the query the fake pipeline fails with BackendUnavailable (a 503)
HANG = "hang"  # the query the fake LLM never answers (until the request is cancelled)
TOO_LONG = "too long"  # the query whose prompt does not fit the fake LLM's context


class FakeLLM:
    """``generate_batch`` like ``LocalLLM``'s: each request's text goes through its ``on_text``."""

    model_version = BASE_VERSION

    def __init__(self) -> None:
        self.hanging = threading.Event()  # set once a HANG generation has started

    def generate_batch(self, reqs: Sequence[Any], timeout_s: float | None = None) -> list[Generation | Exception]:
        out: list[Generation | Exception] = []
        for req in reqs:
            if req.messages[-1]["content"] == HANG:  # never answers: only a cancellation ends it
                self.hanging.set()
                req.cancelled.wait(600)
                out.append(RuntimeError("cancelled"))
                continue
            try:
                self.encode(req.messages, req.max_new_tokens)
            except InputError as exc:  # as LocalLLM: a request that cannot run fails alone
                out.append(exc)
                continue
            for piece in ("hello", " world"):
                if req.on_text is not None:
                    req.on_text(piece)
            out.append(Generation("hello world", 3, 2, self.model_version, 0.01))
        return out

    def encode(self, messages: Any, max_new_tokens: int) -> list[int]:
        """Like ``LocalLLM.encode``: the query ``TOO_LONG`` does not fit the model's context."""
        if messages[-1]["content"] == TOO_LONG:
            raise InputError(f"prompt of 9000 tokens + max_new_tokens {max_new_tokens} exceeds the model's context")
        return [1, 2, 3]

    def chat(self, messages: Any, **kw: Any) -> Generation:
        return Generation("hello world", 3, 2, self.model_version, 0.01)


@dataclass
class FakePipeline:
    """The parts of ``RAGPipeline`` the transformer uses; the request log rows are kept in ``rows``. The
    query ``BOOM`` fails as a bug would, ``DOWN`` as a vector store that is down."""

    settings: Settings
    rows: list[dict[str, Any]] = field(default_factory=list)
    finish = RAGPipeline.finish  # uses only its arguments

    def users(self) -> list[UserDocument]:
        return [UserDocument.from_full_name(ADA)]

    def prepare_many(self, items: Sequence[tuple[RAGRequest, str | None]]) -> list[Prepared | BaseException]:
        out: list[Prepared | BaseException] = []
        for req, key_author in items:
            if req.query == BOOM:  # a bug in the pipeline: an unexpected error, not a TwinError
                out.append(RuntimeError("the pipeline broke"))
                continue
            if req.query == DOWN:
                out.append(BackendUnavailable("the vector store is down (TWIN_QDRANT_URL)"))
                continue
            try:
                max_new = validate_request(req, self.settings)
            except Exception as exc:
                out.append(exc)
                continue
            author = UserDocument.from_full_name(key_author or ADA)
            retrieval = Retrieval(author, "api_key", [req.query], [], 0, "none", 0.0)
            out.append(Prepared(req, retrieval, Prompt([{"role": "user", "content": req.query}]), max_new))
        return out

    def log_request(self, req: RAGRequest, **kw: Any) -> None:
        req.query.encode("utf-8")  # as the warehouse write does: text it cannot store fails here
        self.rows.append({"query": req.query, **kw})


@dataclass
class InProcess:
    app: Any
    server: Any
    transformer: Any
    predictor: Any
    pipeline: FakePipeline


def build(**overrides: Any) -> InProcess:
    """The app of ``twin serve --component all`` with Ada's key, on the fakes above."""
    from twin_core.serving.app import build_app
    from twin_core.serving.auth import Auth
    from twin_core.serving.predictor import TwinPredictor
    from twin_core.serving.server import TwinModelServer
    from twin_core.serving.transformer import TwinTransformer

    settings = load_settings(**{"serve_registry_poll_s": 0, "serve_batch_window_ms": 0, **overrides})
    predictor = TwinPredictor("twin-llm", settings, llm=FakeLLM())
    predictor.load()
    transformer = TwinTransformer("twin", settings, local_predictor=predictor)
    transformer.pipeline = pipeline = FakePipeline(settings)  # type: ignore[assignment]
    transformer.ready = True
    server = TwinModelServer("127.0.0.1", 0)
    server.register_model(transformer)
    server.register_model(predictor)
    app = build_app(server, settings, Auth.from_mapping({ADA_KEY: ADA}), transformer)
    return InProcess(app, server, transformer, predictor, pipeline)


def client(app: Any) -> Any:
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin.test", timeout=30)


def request(ip: InProcess, method: str, path: str, **kw: Any) -> Any:
    """One request through the in-process app (``headers`` default: Ada's key, JSON)."""
    import asyncio

    async def go() -> Any:
        async with client(ip.app) as c:
            return await c.request(method, path, headers=kw.pop("headers", HEADERS), **kw)

    return asyncio.run(go())


def sample(name: str, **labels: str) -> float:
    """A Prometheus sample of this process's registry (0 when the series does not exist yet)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def build_predictor_only(**overrides: Any) -> InProcess:
    """The app of ``twin serve --component predictor``: the predictor alone, under the public name."""
    from twin_core.serving.app import build_app
    from twin_core.serving.auth import Auth
    from twin_core.serving.predictor import TwinPredictor
    from twin_core.serving.server import TwinModelServer

    settings = load_settings(**{"serve_registry_poll_s": 0, "serve_batch_window_ms": 0, **overrides})
    predictor = TwinPredictor("twin", settings, llm=FakeLLM())
    predictor.load()
    server = TwinModelServer("127.0.0.1", 0)
    server.register_model(predictor)
    app = build_app(server, settings, Auth.from_mapping({ADA_KEY: ADA}), None)
    return InProcess(app, server, None, predictor, FakePipeline(settings))
