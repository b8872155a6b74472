"""`twin serve`: the twin over HTTP (KServe model server: RAG transformer + LLM predictor)."""

from __future__ import annotations

import re

import typer

from twin_core.cli.protocol import step

# host[:port]: a host name (KServe's controller passes the predictor's service name, with no port),
# an IPv4 address or a bracketed IPv6 one. No scheme: KServe adds http(s):// itself.
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?::(\d{1,5}))?$")


def _predictor_host(value: str | None) -> str | None:
    """Checked while parsing: a malformed --predictor-host is a usage error, not a transformer that starts
    and then fails every request."""
    if value is None or not value.strip():
        return None  # not given: serve() says whether --component transformer needs it
    match = _HOST_PORT.match(value.strip())
    if match is None or (match.group(1) is not None and not 1 <= int(match.group(1)) <= 65535):
        raise typer.BadParameter(
            f"{value!r}: expected host[:port] (a host name or IP address, port 1-65535, no http://), "
            "e.g. twin-predictor.default or 127.0.0.1:8081"
        )
    return value.strip()


def _bind_error(host: str, port: int, exc: OSError) -> str:
    import errno

    if exc.errno == errno.EADDRINUSE:
        return f"--port {port}: {host}:{port} is already in use (another process listens there); choose another --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host!r}: not an address of this machine (cannot bind {host}:{port})"
    if exc.errno == errno.EACCES:
        return f"--port {port}: permission denied binding {host}:{port} (ports below 1024 need privileges)"
    return f"--host/--port: cannot bind {host}:{port} ({exc.strerror or exc})"


def check_bindable(host: str, port: int) -> None:
    """Bind ``host:port`` as uvicorn will (every address the host resolves to, SO_REUSEADDR), then let go:
    a taken port or a foreign address fails here in milliseconds, before any model loads (seconds)."""
    import socket

    from twin_core.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: not a host name or address ({exc.strerror})") from None
    for family, kind, proto, _, address in infos:
        try:
            sock = socket.socket(family, kind, proto)
        except OSError:  # a family this machine lacks (no IPv6): asyncio skips it too
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio binds it: the IPv4 address is bound on its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise ConfigError(_bind_error(host, port, exc)) from None


def check_listening_fd(fd: int) -> tuple[str, int]:
    """The address of the listening TCP socket ``fd`` (``--fd``), checked before any model loads.

    The caller (a test harness, a supervisor) bound and listens on it, and passed it to this process: the port
    is taken from the bind on, so no other process can take it while the models load (seconds)."""
    import os
    import socket
    import stat

    from twin_core.errors import ConfigError

    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise ConfigError(
            f"--fd {fd}: not an open file descriptor of this process ({exc.strerror}); pass it a listening "
            "socket (e.g. subprocess pass_fds)"
        ) from None
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"--fd {fd}: not a socket; expected a listening TCP socket")
    with socket.socket(fileno=os.dup(fd)) as sock:  # a duplicate: closing it leaves ``fd`` open for uvicorn
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            raise ConfigError(f"--fd {fd}: not a TCP socket (an IPv4 or IPv6 stream socket); expected a listening one")
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ConfigError(f"--fd {fd}: the socket is not listening; bind it and call listen() before passing it")
        # uvicorn opens an inherited socket as AF_UNIX, so asyncio does not set TCP_NODELAY on the connections it
        # accepts; Linux copies it from the listening socket to each of them (no 40 ms delayed-ACK stalls)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = sock.getsockname()[:2]
    return str(host), int(port)


@step("serve")
def app(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 only inside a container)."),
    # No 0 (any free port): the result line and the logs would report 0, not the port bound.
    port: int = typer.Option(8080, "--port", "--http_port", min=1, max=65535, help="HTTP port (1-65535)."),
    component: str = typer.Option(
        "all", "--component", help="all (local: both in one process), transformer (RAG) or predictor (LLM)."
    ),
    predictor_host: str = typer.Option(
        None,
        "--predictor-host",
        "--predictor_host",
        callback=_predictor_host,
        help="host[:port] of the predictor, for --component transformer.",
    ),
    model_name: str = typer.Option(
        None, "--model-name", "--model_name", help="KServe model name (default TWIN_SERVE_MODEL_NAME)."
    ),
    fd: int = typer.Option(
        None,
        "--fd",
        min=0,
        help="Serve on this inherited listening TCP socket (a file descriptor) instead of binding --host/--port, "
        "which cannot be given with it: the result line and the logs report the socket's own address.",
    ),
) -> dict:
    """Serve /v1/models/<name>:predict, /v2/models/<name>/infer, /v2/health/*, /metrics and
    /openai/v1/chat/completions until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    from twin_core.errors import ConfigError, InputError

    if component not in ("all", "transformer", "predictor"):  # before kserve's import (seconds)
        raise InputError(f"--component must be all, transformer or predictor (got {component!r})")
    if fd is None:
        check_bindable(host, port)  # before kserve's import and the models (seconds)
    else:
        given = [f"--{name}" for name in ("host", "port") if ctx.get_parameter_source(name).name == "COMMANDLINE"]
        if given:
            raise ConfigError(
                f"--fd {fd} with {' and '.join(given)}: the server listens on the socket it was given, at that "
                "socket's address; give --fd alone"
            )
        host, port = check_listening_fd(fd)  # before kserve's import and the models (seconds)
    from twin_core.serving.server import serve
    from twin_core.settings import get_settings

    report = serve(
        get_settings(),
        host=host,
        port=port,
        component=component,  # type: ignore[arg-type]
        predictor_host=predictor_host,
        model_name=model_name,
        fd=fd,
    )
    return {"host": report.host, "port": report.port, "component": report.component, "models": report.models}
