"""`twin serve`: the twin over HTTP (KServe model server: RAG transformer + LLM predictor)."""

from __future__ import annotations

import typer

from twin_core.cli.protocol import step


@step("serve")
def app(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 only inside a container)."),
    port: int = typer.Option(8080, "--port", "--http_port", help="HTTP port."),
    component: str = typer.Option(
        "all", "--component", help="all (local: both in one process), transformer (RAG) or predictor (LLM)."
    ),
    predictor_host: str = typer.Option(
        None, "--predictor-host", "--predictor_host", help="host:port of the predictor, for --component transformer."
    ),
    model_name: str = typer.Option(
        None, "--model-name", "--model_name", help="KServe model name (default TWIN_SERVE_MODEL_NAME)."
    ),
) -> dict:
    """Serve /v1/models/<name>:predict, /v2/models/<name>/infer, /v2/health/*, /metrics and
    /openai/v1/chat/completions until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    from twin_core.errors import InputError

    if component not in ("all", "transformer", "predictor"):  # before kserve's import (seconds)
        raise InputError(f"--component must be all, transformer or predictor (got {component!r})")
    from twin_core.serving.server import serve
    from twin_core.settings import get_settings

    report = serve(
        get_settings(),
        host=host,
        port=port,
        component=component,  # type: ignore[arg-type]
        predictor_host=predictor_host,
        model_name=model_name,
    )
    return {"host": report.host, "port": report.port, "component": report.component, "models": report.models}
