"""`twin evaluate` run again: the same inputs give the same stored report, a killed run resumes.

Real CLI, real tiny models, a judge endpoint on 127.0.0.1 that counts its calls. The run is killed
(SIGKILL) by the judge itself at its first call for the baseline: after the candidate was measured in
full, before the baseline was: an event, not a timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eval_fixtures import ROWS, SLUG, setup_tiny_candidate

MODELS_DIR = Path(__file__).resolve().parents[2] / ".pytest_cache" / "d" / "twin-llm-models"
TWIN_BIN = Path(sys.prefix) / "bin" / "twin"
REPLY = json.dumps({"accuracy": {"analysis": "", "score": 3}, "style": {"analysis": "", "score": 2}})


class JudgeServer:
    """An OpenAI-compatible judge; ``kill_at``: the call (1-based) at which it SIGKILLs ``victim`` instead."""

    def __init__(self) -> None:
        self.calls = 0
        self.reply = REPLY
        self.kill_at: int | None = None
        self.victim: subprocess.Popen | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.calls += 1
                if server.kill_at == server.calls and server.victim is not None:
                    os.kill(server.victim.pid, signal.SIGKILL)
                    server.victim.wait()
                    return
                body = json.dumps({"choices": [{"message": {"content": server.reply}}], "usage": {}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def judge() -> Any:
    server = JudgeServer()
    yield server
    server.httpd.shutdown()


def _candidate(settings: Any, tmp_path: Path, judge: JudgeServer) -> tuple[tuple[str, ...], dict[str, str], Any, str]:
    """A tiny candidate to evaluate against the base model with ``judge``: (the `twin` arguments, the env, the
    artifact store, the artifact name of its reports)."""
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.registry import parse_ref

    env = {"TWIN_LLM_THREADS": "1", "COMET_API_KEY": "", "TWIN_LLM_MODELS_DIR": str(MODELS_DIR)}
    env |= {"TWIN_EVAL_JUDGE_BASE_URL": judge.url, "TWIN_EVAL_JUDGE_MODEL": "judge"}
    ref = setup_tiny_candidate(settings, tmp_path)
    args = ("evaluate", "--model", ref, "--baseline", "base", "--min-rows", "2")
    return args, env, open_artifact_store(settings), f"evaluations/{SLUG}/{parse_ref(ref)[1]}"


@pytest.mark.slow
def test_rerun_reuses_the_report_and_a_killed_run_resumes(
    settings: Any, tmp_path: Path, twin: Any, judge: JudgeServer
) -> None:
    args, env, store, reports = _candidate(settings, tmp_path, judge)
    rows = len(ROWS)

    # 1. killed at the judge's first call for the baseline: no report at all, not even half of one
    judge.kill_at = rows + 1
    judge.victim = subprocess.Popen(
        [str(TWIN_BIN), *args], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    judge.victim.communicate(timeout=600)
    assert judge.victim.returncode == -signal.SIGKILL and judge.calls == rows + 1
    assert store.versions(reports) == []
    [kept] = store.list("evaluations/.resume")  # the candidate's measurements, for the re-run
    assert kept.endswith("/candidate.json")

    # 2. the re-run measures only the baseline: the candidate's answers and judge scores were kept
    judge.kill_at, judge.calls = None, 0
    run = twin(*args, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.result
    assert judge.calls == rows and first["reused"] is False
    assert first["judge"]["status"] == "ok" and first["judge"]["calls"] == 2 * rows
    assert first["metrics"]["candidate"]["judge_accuracy"] == 3.0 and first["metrics"]["baseline"]["judge_style"] == 2.0
    assert first["report"]["artifact"] == f"{reports}/v0001"
    assert store.list("evaluations/.resume") == []  # a complete report stored: what a re-run returns now

    # 3. the same inputs again: the same stored report, no model call, no second version or Comet experiment
    judge.calls = 0
    run = twin(*args, env=env)
    assert run.returncode == 0 and run.result["reused"] is True and judge.calls == 0
    assert run.result["report"] == first["report"] and run.result["gate_checks"] == first["gate_checks"]
    assert run.result["metrics"] == first["metrics"] and store.versions(reports) == ["v0001"]

    # 4. --force evaluates again, from scratch: a new version with the very same numbers
    run = twin(*args, "--force", env=env)
    assert run.returncode == 0 and run.result["reused"] is False and judge.calls == 2 * rows
    assert run.result["report"]["artifact"] == f"{reports}/v0002" and run.result["metrics"] == first["metrics"]


@pytest.mark.slow
def test_a_judge_that_replies_without_scores_is_reused_an_unreachable_one_fails_retryable(
    settings: Any, tmp_path: Path, twin: Any, judge: JudgeServer
) -> None:
    """A judge that answers without scores (the local 135M model does, greedily, every time) answers the same
    way on a re-run: its report is reused (it was written again on every run). A judge that cannot be reached
    is an outage, not a verdict: the step is retryable (exit 4) and stores nothing (the gate decided without the
    judge's optional metrics, and could pass a candidate because of an outage)."""
    from support.ports import refused_port

    args, env, store, reports = _candidate(settings, tmp_path, judge)

    judge.reply = "What a lovely answer, truly."
    first = twin(*args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.result["judge"]["status"] == "unavailable" and first.result["judge"]["unreachable"] == 0
    calls, judge.calls = judge.calls, 0
    assert calls == 3  # given up after max_consecutive_failures replies without scores
    again = twin(*args, env=env)
    assert again.result["reused"] is True and judge.calls == 0 and store.versions(reports) == ["v0001"]

    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/v1"
        run = twin(*args, env={**env, "TWIN_EVAL_JUDGE_BASE_URL": url})
    # an outage is not a verdict: retryable (exit 4), nothing stored, the gate did not decide without the judge
    assert (run.returncode, run.result["kind"]) == (4, "unavailable"), run.stderr[-3000:]
    assert run.result["error"].startswith(f"the judge (judge @ {url}) could not be reached (3 of 3 calls; ")
    assert run.result["error"].endswith(
        "no report was stored and the gate did not decide; the models measured in full are kept for the retry. "
        "Retry once the judge is back, or run with --no-judge to decide without it"
    )
    assert store.versions(reports) == ["v0001"]


@pytest.mark.slow
def test_the_demo_run_again_returns_the_stored_report(
    settings: Any, tmp_path: Path, judge: JudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`twin demo` evaluates as `twin evaluate` does: a second demo on the same stores stores no second report."""
    from twin_core.demo import evaluation as demo_evaluation
    from twin_core.settings import get_settings

    _, env, store, reports = _candidate(settings, tmp_path, judge)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    monkeypatch.setattr(demo_evaluation, "MIN_ROWS", 2)  # the sample authors hold out >= 10 rows; these 3

    [first] = demo_evaluation.stage(tmp_path)["evaluated"]
    assert (first["reused"], judge.calls) == (False, 2 * len(ROWS))
    judge.calls = 0
    [again] = demo_evaluation.stage(tmp_path)["evaluated"]
    assert (again["reused"], judge.calls) == (True, 0)
    assert again == {**first, "reused": True} and store.versions(reports) == ["v0001"]
