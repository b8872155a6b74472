"""Local mode: run a `twin` step as a subprocess of the twin_core environment.

Same command, same environment variables and same result protocol as the pod: the step's last
stdout line is its JSON result and becomes the task's XCom.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from twin_ops.config import twin_bin

# Exit codes of the `twin` protocol that no retry can fix: 2 config, 3 bad input.
# 4 (a store or service unavailable, e.g. the embedded Qdrant locked by another process) and anything
# unexpected keep the task's retries.
NO_RETRY_EXIT_CODES = {2: "configuration error", 3: "bad input"}
_BAR = re.compile(r"\d+%\||\|\s*\d+/\d+ \[|\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]")
_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")


class TwinStepFailed(RuntimeError):
    """A `twin` step exited non-zero with a retryable code (its reason is in the message)."""


class TwinStepRejected(AirflowFailException):
    """A `twin` step exited with a code no retry can fix (bad input, config): fails without retry."""


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The last non-empty stdout line, if it is a JSON object."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


class StderrLines:
    """Split a step's stderr into log lines, on newlines *and* carriage returns.

    Progress bars (tqdm) redraw one terminal line with ``\\r``; read as lines, a bar and the warning
    printed after it share one line. Here every ``\\r``/``\\n`` ends a fragment; a run of bar
    redraws keeps only its last state; WARNING/ERROR lines are remembered for the failure message.
    """

    def __init__(self, keep: int = 5) -> None:
        self._buffer = ""
        self._pending_bar: str | None = None
        self.problems: deque[str] = deque(maxlen=keep)

    def feed(self, text: str) -> Iterator[str]:
        self._buffer += text
        *complete, self._buffer = re.split(r"\r\n|\r|\n", self._buffer)
        for fragment in complete:
            yield from self._fragment(fragment)

    def close(self) -> Iterator[str]:
        rest, self._buffer = self._buffer, ""
        yield from self._fragment(rest)
        if self._pending_bar is not None:
            yield self._pending_bar
            self._pending_bar = None

    def _fragment(self, fragment: str) -> Iterator[str]:
        fragment = fragment.rstrip()
        if not fragment.strip():
            return
        if _BAR.search(fragment) and not _PROBLEM.search(fragment):
            self._pending_bar = fragment  # a redraw: only the bar's last state is logged
            return
        if self._pending_bar is not None:
            yield self._pending_bar
            self._pending_bar = None
        if _PROBLEM.search(fragment):
            self.problems.append(fragment)
        yield fragment


def failure_reason(result: dict[str, Any] | None, problems: Sequence[str], returncode: int) -> str:
    """Why a step failed, in one line: its JSON error, else its failed links, else its last warnings."""
    result = result or {}
    if result.get("error"):
        return str(result["error"])
    failed = [
        f"{r.get('link')}: {r.get('reason')}: {r.get('error')}"
        for r in result.get("links") or []
        if isinstance(r, dict) and r.get("status") == "failed"
    ]
    if failed:
        return "; ".join(failed)
    if problems:
        return " | ".join(problems)
    return f"exit code {returncode} and no error message"


KILL_GRACE_S = 10  # on_kill: how long `twin` may take to stop on SIGTERM before SIGKILL


class TwinLocalOperator(BaseOperator):
    """Run ``twin <arguments>`` locally; push the JSON result as XCom."""

    template_fields: Sequence[str] = ("arguments", "env_vars")
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        arguments: list[str],
        env_vars: dict[str, str] | None = None,
        profile: str = "cpu",
        deployer: bool = False,  # kubernetes mode's API identity; a local step uses the caller's kubeconfig
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.arguments = arguments
        self.env_vars = env_vars or {}
        self.profile = profile
        self.deployer = deployer

    def execute(self, context: Any) -> dict[str, Any] | None:
        cmd = [twin_bin(), *[str(a) for a in self.arguments]]
        env = {**os.environ, **{k: str(v) for k, v in self.env_vars.items()}, "TWIN_PROGRESS": "0"}
        env.pop("TWIN_XCOM_PATH", None)
        self.log.info("running (profile %s): %s", self.profile, " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
        self._proc = proc  # for on_kill
        lines = StderrLines()
        stderr_thread = threading.Thread(target=self._pump_stderr, args=(proc, lines), daemon=True)
        stderr_thread.start()
        stdout_bytes = proc.stdout.read() if proc.stdout is not None else b""
        proc.wait()
        # Every stderr line, up to the last: the failure message quotes its WARNING/ERROR lines. The reader
        # ends at EOF, once every holder of the pipe has exited: `twin` and what it started (accelerate
        # ranks), all in the task's process group, which Airflow kills as a whole (os.killpg) when it
        # stops the task; a `twin` killed by a signal closes its end too. No timeout: one could cut the
        # reason off a slow machine's log.
        stderr_thread.join()
        result = parse_result(stdout_bytes.decode("utf-8", errors="replace"))
        if proc.returncode != 0:
            reason = failure_reason(result, list(lines.problems), proc.returncode)
            command = f"`twin {' '.join(map(str, self.arguments))}`"
            if proc.returncode in NO_RETRY_EXIT_CODES:
                kind = NO_RETRY_EXIT_CODES[proc.returncode]
                message = f"{command} failed ({kind}, exit code {proc.returncode}, not retried): {reason}"
                self.log.error("%s", message)
                raise TwinStepRejected(message)
            message = f"{command} failed (exit code {proc.returncode}, retryable): {reason}"
            self.log.error("%s", message)
            raise TwinStepFailed(message)
        if result is None:
            raise TwinStepFailed("step printed no JSON result line")
        self.log.info("result: %s", json.dumps(result)[:2000])
        return result

    def on_kill(self) -> None:
        """The task was stopped (its execution_timeout, a user marking it failed, SIGTERM): stop `twin` too.
        Without this, a timed-out step kept running beside its retry (two `evaluate`s on one embedded
        Qdrant, two `deploy watch`es on one canary). SIGTERM first, for its own clean-up; SIGKILL after
        ``KILL_GRACE_S``."""
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            return
        self.log.warning("stopping `twin` (pid %s)", proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _pump_stderr(self, proc: subprocess.Popen, lines: StderrLines) -> None:
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end mid-character
        while chunk := os.read(fd, 65536):
            for line in lines.feed(decoder.decode(chunk)):
                self.log.info("%s", line)
        for line in lines.close():
            self.log.info("%s", line)
