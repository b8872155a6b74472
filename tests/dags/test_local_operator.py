"""Local mode runs the twin_core environment's `twin` as a subprocess; its JSON line is the XCom.

A failure names its reason (the step's JSON error, its failed links, or its last WARNING/ERROR lines
even when a progress bar shared their line); bad input (exit 3) and config errors (2) fail without
retry, an unavailable backend (4) keeps the task's retries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException
from twin_ops.local_operator import (
    StderrLines,
    TwinLocalOperator,
    TwinStepFailed,
    TwinStepRejected,
    failure_reason,
    parse_result,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
needs_twin = pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
BAR_THEN_WARNING = (
    "crawl:   0%|          | 0/1 [00:00<?, ?link/s]\r"
    "2026-01-01 10:00:00,000 WARNING twin_core.etl.runner: failed file:///x: git: /x is not a git repository\n"
    "crawl: 100%|##########| 1/1 [00:00<00:00, 9.1link/s]\rcrawl: 100%|##########| 1/1 [00:00<00:00, 9.0link/s]\n"
)


def _op(args: list[str]) -> TwinLocalOperator:
    with DAG("local_probe", schedule=None):
        return TwinLocalOperator(task_id="probe", arguments=args)


def _fake_twin(tmp_path: Path, stderr: str, stdout: str, code: int) -> Path:
    script = tmp_path / "fake-twin"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write({stderr!r})\nsys.stderr.flush()\n"
        f"sys.stdout.write({stdout!r})\nsys.exit({code})\n"
    )
    script.chmod(0o755)
    return script


@needs_twin
def test_result_line_becomes_the_return_value(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    result = _op(["warehouse", "stats"]).execute(context={})
    assert result["step"] == "warehouse.stats"
    assert result["status"] == "ok"
    assert result["users"] == 0


@needs_twin
def test_bad_input_fails_without_retry_and_names_the_reason(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    bad = tmp_path / "PostDocument.json"
    bad.write_text("not json")
    with pytest.raises(TwinStepRejected, match=r"bad input, exit code 3, not retried\): .*PostDocument\.json") as exc:
        _op(["warehouse", "import", str(bad)]).execute(context={})
    assert isinstance(exc.value, AirflowFailException)  # Airflow fails the task at once, no retry


@needs_twin
def test_a_folder_that_is_not_a_repository_fails_at_once_with_its_reason(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("not code\n")
    with pytest.raises(TwinStepRejected) as exc:
        _op(["etl", "crawl", "--user", "Ada Q", "--link", folder.as_uri()]).execute(context={})
    assert str(exc.value).endswith(
        f"(bad input, exit code 3, not retried): {folder.as_uri()}: not_a_repository: {folder} is a folder but "
        "not a git repository (no .git inside); run `git init` and commit, or link the repository itself"
    )


@needs_twin
def test_unavailable_backend_keeps_its_retries(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TWIN_MONGODB_URI", "mongodb://127.0.0.1:1")
    monkeypatch.setenv("TWIN_MONGODB_TIMEOUT_MS", "300")
    with pytest.raises(TwinStepFailed, match=r"exit code 4, retryable\): .*127\.0\.0\.1:1") as exc:
        _op(["warehouse", "stats"]).execute(context={})
    assert not isinstance(exc.value, AirflowFailException)


@needs_twin
def test_embedded_qdrant_lock_collision_is_a_clear_retryable_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the twin_embedded_qdrant pool prevents, should it happen anyway (a `twin` run by hand)."""
    home = tmp_path / "home"
    (home / "qdrant").mkdir(parents=True)
    monkeypatch.setenv("TWIN_HOME", str(home))
    # The holder keeps the lock until the test ends: it blocks on its stdin, and is killed in `finally`.
    hold = "from qdrant_client import QdrantClient; import sys; c = QdrantClient(path=sys.argv[1]); "
    hold += "print('held', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [str(TWIN.parent / "python"), "-c", hold, str(home / "qdrant")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        locked = r"exit code 4, retryable\): embedded Qdrant at .* is in use by another process"
        with pytest.raises(TwinStepFailed, match=locked):
            _op(["features", "run"]).execute(context={})
        assert holder.poll() is None  # it held the lock all along
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


def test_warning_after_a_progress_bar_reaches_the_failure_message(tmp_path, monkeypatch) -> None:
    fake = _fake_twin(tmp_path, BAR_THEN_WARNING, "progress\n", 3)
    monkeypatch.setenv("TWIN_BIN", str(fake))
    with pytest.raises(TwinStepRejected) as exc:
        _op(["etl", "crawl"]).execute(context={})
    assert str(exc.value) == (
        "`twin etl crawl` failed (bad input, exit code 3, not retried): 2026-01-01 10:00:00,000 WARNING "
        "twin_core.etl.runner: failed file:///x: git: /x is not a git repository"
    )


def test_the_last_warning_after_a_long_stderr_reaches_the_failure_message(tmp_path, monkeypatch) -> None:
    """The stderr reader is joined without a timeout: a slow machine's reader still delivers the last line."""
    noise = "".join(f"2026-01-01 10:00:00,000 INFO twin_core.etl.runner: line {i}\n" for i in range(20_000))
    warning = "2026-01-01 10:00:01,000 WARNING twin_core.etl.runner: failed file:///x: the reason, last of all"
    monkeypatch.setenv("TWIN_BIN", str(_fake_twin(tmp_path, noise + warning + "\n", "", 3)))
    with pytest.raises(TwinStepRejected) as exc:
        _op(["etl", "crawl"]).execute(context={})
    assert str(exc.value) == f"`twin etl crawl` failed (bad input, exit code 3, not retried): {warning}"


def test_a_step_killed_by_a_signal_fails_retryable_with_its_last_warning(tmp_path, monkeypatch) -> None:
    """A killed `twin` closes its stderr: the reader ends and the task fails (no hang), with the reason."""
    script = tmp_path / "killed-twin"
    script.write_text(
        f"#!{sys.executable}\nimport os, signal, sys\n"
        "sys.stderr.write('2026-01-01 10:00:00,000 ERROR twin_core: out of memory\\n')\nsys.stderr.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("TWIN_BIN", str(script))
    with pytest.raises(TwinStepFailed) as exc:
        _op(["features", "run"]).execute(context={})
    assert str(exc.value) == (
        "`twin features run` failed (exit code -9, retryable): 2026-01-01 10:00:00,000 ERROR twin_core: out of memory"
    )


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_on_kill_stops_twin(tmp_path, monkeypatch, ignores_sigterm: bool) -> None:
    """Airflow calls on_kill when a try passes its execution_timeout (or is stopped): `twin` stops too, by
    SIGTERM, or SIGKILL after the grace period (it kept running beside the retry). No timing: the step
    runs in a thread until its `twin` has written its pid, then the test stops it as the task runner does."""
    import threading

    import twin_ops.local_operator as local_operator

    ready = tmp_path / "pid"
    script = tmp_path / "stuck-twin"
    script.write_text(
        f"#!{sys.executable}\nimport os, signal\n"
        + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignores_sigterm else "")
        + f"open({str(ready)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    signal.pause()\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("TWIN_BIN", str(script))
    monkeypatch.setattr(local_operator, "KILL_GRACE_S", 0.5)
    op, raised = _op(["evaluate", "--model", "ada/v0002"]), []

    def run() -> None:
        try:
            op.execute(context={})
        except Exception as exc:  # noqa: BLE001 - the step's failure, checked below
            raised.append(exc)

    step = threading.Thread(target=run)
    step.start()
    while not ready.exists() or not ready.read_text():  # pytest-timeout bounds it
        step.join(0.05)
    op.on_kill()
    step.join()
    assert op._proc.returncode == (-9 if ignores_sigterm else -15)
    assert [type(e) for e in raised] == [TwinStepFailed]
    assert str(raised[0]).startswith(f"`twin evaluate --model ada/v0002` failed (exit code {op._proc.returncode}")
    op.on_kill()  # nothing left to stop: a no-op


def test_unexpected_exit_is_retryable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_BIN", str(_fake_twin(tmp_path, "", "", 1)))
    with pytest.raises(TwinStepFailed, match=r"exit code 1, retryable\): exit code 1 and no error message"):
        _op(["x"]).execute(context={})


def test_stderr_is_split_on_carriage_returns_and_bars_collapse() -> None:
    lines = StderrLines()
    out = [*lines.feed(BAR_THEN_WARNING[:50]), *lines.feed(BAR_THEN_WARNING[50:]), *lines.close()]
    assert out == [
        "crawl:   0%|          | 0/1 [00:00<?, ?link/s]",
        "2026-01-01 10:00:00,000 WARNING twin_core.etl.runner: failed file:///x: git: /x is not a git repository",
        "crawl: 100%|##########| 1/1 [00:00<00:00, 9.0link/s]",
    ]
    assert list(lines.problems) == [out[1]]


def test_failure_reason_prefers_the_json_error_then_the_failed_links() -> None:
    assert failure_reason({"error": "boom"}, ["WARNING x"], 3) == "boom"
    crawl = {"links": [{"link": "https://a", "status": "failed", "reason": "challenge", "error": "Just a moment"}]}
    assert failure_reason(crawl, ["WARNING x"], 3) == "https://a: challenge: Just a moment"
    assert failure_reason(None, ["WARNING x", "ERROR y"], 3) == "WARNING x | ERROR y"


def test_parse_result_takes_the_last_json_line() -> None:
    assert parse_result('progress\n{"a": 1}\n\n') == {"a": 1}
    assert parse_result("no json") is None
    assert parse_result("[1, 2]") is None
