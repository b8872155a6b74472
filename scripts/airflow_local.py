"""`make airflow`: Airflow 3 on this machine, over the repo's dags/ and plugins/, with the embedded stores.

Starts the API server (UI + REST API + task execution API), scheduler, DAG processor and triggerer from
.venv-airflow, all bound to 127.0.0.1, with:

- a project-local AIRFLOW_HOME (``airflow-home/``, ignored by git): SQLite metadata DB, logs, a login
  password and the JWT/session secrets the components share, all kept for the next start;
- TWIN_EXECUTION=local (each task runs `.venv/bin/twin …` as a subprocess) and the same TWIN_HOME as
  ``make demo`` (``.twin/``), so the UI's runs read and write the demo's stores;
- ``parallelism`` capped (LocalExecutor would otherwise start 32 workers) and the one-slot pool
  ``twin_embedded_qdrant`` that serialises every step opening the embedded Qdrant.

Every process started here stays in the launcher's process group (none is daemonized). Ctrl-C in the
terminal reaches the whole group; on Ctrl-C or SIGTERM the launcher also terminates every descendant
(components, executor workers, `twin` task subprocesses) and, when it leads its own group (started with
``setsid``, as the tests do), the group. A second start reuses the metadata DB and the login.

The API server's port is known before it starts (``[core] execution_api_server_url`` and ``[api] base_url``
name it), so it cannot bind port 0. ``--port 0`` lets the launcher own the choice: it picks a free port,
and when the API server cannot bind it (another process took it meanwhile: "address already in use")
it picks another and starts the API server again, a few times at most. Either way the server counts as
up only once the listening socket on that port belongs to the API server it started, and that server
answers its health check: another Airflow on the same port cannot pass for it. The scheduler and the
triggerer run with ``--skip-serve-logs``: all components share one AIRFLOW_HOME, so the API server reads
task logs from its files and no log-server port is opened. The line ``Airflow is up: URL`` gives the URL.

Run with the Airflow environment's Python: ``.venv-airflow/bin/python scripts/airflow_local.py``.
The end-to-end test (tests/dags/test_airflow_e2e.py) starts this very script with ``--port 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AF_BIN = Path(sys.executable).parent  # .venv-airflow/bin
LOCAL_SETTINGS = Path(__file__).with_name("airflow_local_settings.py")
POOL = "twin_embedded_qdrant"  # twin_ops.factory.EMBEDDED_QDRANT_POOL
POOL_DESCRIPTION = "LLM Twin local mode: steps using the embedded Qdrant, one at a time"
USER = "admin"
# After the API server: they need its execution API. Their log servers are not started (one AIRFLOW_HOME).
COMPONENTS = {
    "scheduler": ["--skip-serve-logs"],
    "dag-processor": [],
    "triggerer": ["--skip-serve-logs"],
}
PORT_ATTEMPTS = 5  # with --port 0: API server starts on a fresh free port after "address already in use"
API_START_TIMEOUT_S = 180  # per start of the API server: listening and healthy
SETUP_TIMEOUT_S = 900  # `airflow db migrate`, `airflow pools set` (SQLite, a loaded 2-core machine)
ADDRESS_IN_USE = "address already in use"
LOOPBACK_ANY = ("127.0.0.1", "0.0.0.0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _secrets(home: Path) -> dict[str, str]:
    """The admin password and the secrets every component must share; created once, then reused."""
    path = home / "twin-local-secrets.json"
    if path.is_file():
        return json.loads(path.read_text())
    values = {
        "password": secrets.token_urlsafe(12),
        "jwt_secret": secrets.token_urlsafe(32),
        "secret_key": secrets.token_urlsafe(32),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def airflow_env(args: argparse.Namespace, home: Path, creds: dict[str, str], port: int) -> dict[str, str]:
    passwords = home / "simple_auth_manager_passwords.json"
    if not passwords.is_file() or json.loads(passwords.read_text()).get(USER) != creds["password"]:
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps({USER: creds["password"]}))
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATH": f"{AF_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        # Not the repo's airflow.cfg (it describes the compose/cluster images): an empty one in AIRFLOW_HOME.
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        # SQLite (WAL, set by Airflow): one writer at a time; a writer waits up to 120 s for the lock
        # (default 5 s), and config/airflow_local_settings.py makes SAVEPOINTs take it first (see there).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=120",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(args.parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(args.paused),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": creds["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": creds["jwt_secret"],
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # A busy 2-core laptop answers the task execution API slowly; the default timeout fails tasks.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(args.refresh_interval),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(args.refresh_interval),
        # The project's side: tasks run the twin_core environment's `twin` on the embedded stores.
        "TWIN_EXECUTION": "local",
        "TWIN_HOME": str(args.twin_home),
        "TWIN_BIN": str(REPO / ".venv" / "bin" / "twin"),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE", "1"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


def install_local_settings(home: Path) -> Path:
    """``AIRFLOW_HOME/config/airflow_local_settings.py`` (on every Airflow process's path): the SQLite fix."""
    dest = home / "config" / LOCAL_SETTINGS.name
    dest.parent.mkdir(exist_ok=True)
    shutil.copyfile(LOCAL_SETTINGS, dest)
    return dest


def write_env_file(home: Path, env: dict[str, str]) -> Path:
    """``AIRFLOW_HOME/env.sh``: source it to run `airflow …` commands (backfill, dags test) on this instance."""
    import shlex

    keys = sorted(k for k in env if k.startswith(("AIRFLOW", "TWIN_")) or k in ("PATH", "HF_HUB_OFFLINE"))
    path = home / "env.sh"
    path.touch(mode=0o600)
    path.write_text("".join(f"export {k}={shlex.quote(env[k])}\n" for k in keys))
    return path


def _run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        try:
            proc = subprocess.run(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=SETUP_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{' '.join(cmd)} did not finish within {SETUP_TIMEOUT_S}s; see {log}") from None
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); end of {log}:\n{tail}")


class PortTaken(Exception):
    """The API server could not listen on its port: another process holds it."""


def listeners(port: int) -> set[int | None]:
    """Who listens on 127.0.0.1:``port`` (or on 0.0.0.0:``port``, which covers it): process ids; None for a
    socket psutil could not match to a process (another user's, or one opened while it looked)."""
    import psutil  # an Airflow dependency

    return {
        c.pid
        for c in psutil.net_connections(kind="tcp4")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.laddr.ip in LOOPBACK_ANY
    }


def process_tree(pid: int) -> set[int]:
    """``pid`` and its descendants (an API server with several workers listens from a child)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return {pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def owns_port(pid: int, port: int) -> bool:
    """True when every listener on 127.0.0.1:``port`` is the process ``pid`` or a descendant (and there is
    one). Raises PortTaken when another process of ours listens there; a listener psutil cannot name is
    not taken as ours (False: ask again; if it holds the port, the API server fails to bind it)."""
    holders = listeners(port)
    ours = process_tree(pid)
    others = holders - ours
    if others - {None}:
        raise PortTaken(f"another process listens on port {port}: pid {sorted(others - {None})}")
    return bool(holders) and not others


def _log_mentions(log: Path, offset: int, text: str) -> bool:
    with log.open("rb") as f:
        f.seek(offset)
        return text in f.read().decode("utf-8", errors="replace").lower()


def _terminate_tree(proc: subprocess.Popen, grace: float = 10.0) -> None:
    import psutil

    with contextlib.suppress(psutil.Error):
        _terminate_all([psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)], grace)
    proc.wait()


def _terminate_all(processes: list, grace: float) -> None:
    """SIGTERM each of ``processes`` (psutil), SIGKILL those still alive after ``grace`` seconds."""
    import psutil

    for p in processes:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def wait_api_server(
    proc: subprocess.Popen,
    port: int,
    log: Path,
    log_offset: int,
    timeout: float,
    healthy: Callable[[str], bool] | None = None,
) -> None:
    """Return once ``proc`` listens on 127.0.0.1:``port`` (its own socket, see owns_port) and answers its
    health check. Raises PortTaken when it cannot bind the port (it exits, or logs "address already in
    use"), SystemExit when it exits otherwise or is not up within ``timeout`` seconds."""
    url = f"http://127.0.0.1:{port}"
    healthy = healthy or _health_ok
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            if _log_mentions(log, log_offset, ADDRESS_IN_USE):
                raise PortTaken(f"the API server could not bind port {port}: {ADDRESS_IN_USE}")
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
            raise SystemExit(f"api-server exited with code {proc.returncode} during start-up; end of {log}:\n{tail}")
        if _log_mentions(log, log_offset, ADDRESS_IN_USE):
            _terminate_tree(proc)
            raise PortTaken(f"the API server could not bind port {port}: {ADDRESS_IN_USE}")
        # Only once the listener is this server's is an answer on the port its answer.
        if owns_port(proc.pid, port) and healthy(url):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the API server did not answer on {url} within {timeout:.0f}s; see {log}")
        time.sleep(0.5)


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_api_server(
    cmd: list[str],
    env_for_port: Callable[[int], dict[str, str]],
    port: int,
    log: Path,
    attempts: int = PORT_ATTEMPTS,
    timeout: float = API_START_TIMEOUT_S,
    healthy: Callable[[str], bool] | None = None,
) -> tuple[subprocess.Popen, int, dict[str, str]]:
    """Start the API server (``cmd``, environment ``env_for_port(port)``) and wait until it is up.

    ``port`` 0: a free port is picked; when the server cannot bind it (taken meanwhile), another one, up
    to ``attempts`` starts. A fixed port is tried once. Returns (process, port, environment)."""
    for attempt in range(1, attempts + 1):
        chosen = port or _free_port()
        env = env_for_port(chosen)
        offset = log.stat().st_size if log.exists() else 0
        with log.open("a") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_api_server(proc, chosen, log, offset, timeout, healthy)
            return proc, chosen, env
        except PortTaken as exc:
            if proc.poll() is None:
                _terminate_tree(proc)
            if port or attempt == attempts:
                raise SystemExit(f"{exc} (attempt {attempt} of {1 if port else attempts})") from None
            print(f"{exc}; starting it again on another port", flush=True)
        except BaseException:
            if proc.poll() is None:
                _terminate_tree(proc)
            raise
    raise AssertionError("unreachable")


def _warm_up_execution_api(url: str, timeout: float = 600) -> None:
    """The API server builds its task execution API on the first request, blocking every other request
    meanwhile (over a minute on a busy 2-core machine): a task starting then times out. Pay it here."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{url}/execution/health", timeout=timeout) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"the task execution API on {url}/execution/ did not answer: {exc}") from None
    print(f"execution API ready ({time.monotonic() - started:.0f}s)", flush=True)


def _stop_group(procs: dict[str, subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM the whole process group (components, executor workers, `twin` tasks), then SIGKILL."""
    import psutil  # an Airflow dependency

    me = psutil.Process()
    everyone = me.children(recursive=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getpgrp() == os.getpid():  # started with its own group (setsid, a test): the whole group
        os.killpg(os.getpgrp(), signal.SIGTERM)
    _terminate_all(everyone, grace)  # every descendant, also those that left the group (setsid)
    for proc in procs.values():
        if proc.poll() is None:
            proc.wait(timeout=5)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("AIRFLOW_PORT", "8080")),
        help="the API server's port on 127.0.0.1 (0: a free one, another one if it is taken meanwhile)",
    )
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("TWIN_AIRFLOW_HOME", REPO / "airflow-home")))
    parser.add_argument("--twin-home", type=Path, default=Path(os.environ.get("TWIN_HOME", REPO / ".twin")))
    parser.add_argument("--parallelism", type=int, default=int(os.environ.get("AIRFLOW_PARALLELISM", "4")))
    parser.add_argument("--refresh-interval", type=int, default=30, help="seconds between DAG folder scans")
    parser.add_argument(
        "--paused", action="store_true", help="new DAGs start paused (default: active, so Assets chain at once)"
    )
    args = parser.parse_args(argv)
    args.home = args.home.resolve()
    args.twin_home = args.twin_home.resolve()
    return args


def _cannot_start(args: argparse.Namespace) -> str | None:
    """Why the launcher cannot start (a fixed port already answered, no twin_core environment), or None."""
    if args.port and _port_in_use(args.port):
        return f"port {args.port} on 127.0.0.1 is in use: stop what runs there or pass --port / AIRFLOW_PORT"
    if not (REPO / ".venv" / "bin" / "twin").exists():
        return "the twin_core environment is missing: run `make setup` first"
    return None


def _prepare_homes(args: argparse.Namespace) -> Path:
    """AIRFLOW_HOME (an empty airflow.cfg, the local settings) and TWIN_HOME; returns the logs folder."""
    args.home.mkdir(parents=True, exist_ok=True)
    args.twin_home.mkdir(parents=True, exist_ok=True)
    logs = args.home / "logs"
    logs.mkdir(exist_ok=True)
    (args.home / "airflow.cfg").touch()
    install_local_settings(args.home)
    return logs


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT raise KeyboardInterrupt in the main thread, once: the first unwinds into the
    stopping ``finally``, a second one (an impatient Ctrl-C) does not interrupt that clean-up."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _start_components(
    args: argparse.Namespace,
    creds: dict[str, str],
    env: dict[str, str],
    logs: Path,
    procs: dict[str, subprocess.Popen],
) -> tuple[str, Path]:
    """Migrate the DB, set the pool (``env``: any API port), start the API server, then the other
    components, each added to ``procs`` as soon as it runs (so the caller stops it whatever happens).
    Returns the URL and env.sh."""
    airflow = str(AF_BIN / "airflow")
    first = not (args.home / "airflow.db").exists()
    print("creating the metadata DB…" if first else "reusing the metadata DB…", flush=True)
    _run([airflow, "db", "migrate"], env, logs / "setup.log")
    _run([airflow, "pools", "set", POOL, "1", POOL_DESCRIPTION], env, logs / "setup.log")
    # First the API server: tasks call its execution API, it must answer before any is queued.
    procs["api-server"], port, env = start_api_server(
        [airflow, "api-server"],
        lambda port: airflow_env(args, args.home, creds, port),
        args.port,
        logs / "api-server.log",
    )
    url = f"http://127.0.0.1:{port}"
    env_file = write_env_file(args.home, env)
    _warm_up_execution_api(url)
    for name, options in COMPONENTS.items():
        with (logs / f"{name}.log").open("a") as out:
            procs[name] = subprocess.Popen(
                [airflow, name, *options], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
    return url, env_file


def _watch(procs: dict[str, subprocess.Popen], logs: Path) -> int:
    """Wait until a component exits (then 1: Airflow is incomplete) or a signal interrupts."""
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping (see {logs / (name + '.log')})")
                return 1
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    problem = _cannot_start(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    logs = _prepare_homes(args)
    creds = _secrets(args.home)
    # `db migrate` and `pools set` never call the API server: any port will do until it has one.
    env = airflow_env(args, args.home, creds, args.port or 8080)
    procs: dict[str, subprocess.Popen] = {}
    _stop_on_signals()
    try:
        print(f"AIRFLOW_HOME={args.home}  TWIN_HOME={args.twin_home}  (logs in {logs})", flush=True)
        url, env_file = _start_components(args, creds, env, logs, procs)
        print(
            f"\nAirflow is up: {url}\n  login: {USER} / {creds['password']}\n"
            f"  trigger twin_etl from its form ({url}/dags/twin_etl), watch twin_features start from the Asset.\n"
            f"  CLI on this instance: . {env_file} && airflow dags list\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        return _watch(procs, logs)
    except KeyboardInterrupt:
        print("\nstopping Airflow…", flush=True)
        return 0
    finally:
        _stop_group(procs)


if __name__ == "__main__":
    sys.exit(main())
