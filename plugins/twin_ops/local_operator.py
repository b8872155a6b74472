"""Local mode: run a `twin` step as a subprocess of the twin_core environment.

Same command, same environment variables and same result protocol as the pod: the step's last
stdout line is its JSON result and becomes the task's XCom.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from twin_ops.config import twin_bin


class TwinStepFailed(RuntimeError):
    """A `twin` step exited non-zero (its JSON error is in the message)."""


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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.arguments = arguments
        self.env_vars = env_vars or {}
        self.profile = profile

    def execute(self, context: Any) -> dict[str, Any] | None:
        cmd = [twin_bin(), *[str(a) for a in self.arguments]]
        env = {**os.environ, **{k: str(v) for k, v in self.env_vars.items()}, "TWIN_PROGRESS": "0"}
        env.pop("TWIN_XCOM_PATH", None)
        self.log.info("running (profile %s): %s", self.profile, " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        stderr_thread = threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True)
        stderr_thread.start()
        stdout, _ = proc.communicate()
        stderr_thread.join(timeout=5)
        result = parse_result(stdout)
        if proc.returncode != 0:
            reason = (result or {}).get("error") or f"exit code {proc.returncode}"
            raise TwinStepFailed(f"`twin {' '.join(map(str, self.arguments))}` failed: {reason}")
        if result is None:
            raise TwinStepFailed("step printed no JSON result line")
        self.log.info("result: %s", json.dumps(result)[:2000])
        return result

    def _pump_stderr(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.log.info("%s", line.rstrip())
