"""A task log a reader can trust: libraries' misleading or chatty lines are dropped, their useful ones kept.

Each case runs in a subprocess: logging set-up and comet_ml's handlers are process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _stderr(tmp_path: Path, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COMET_API_KEY"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={**env, "TWIN_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stderr


def test_the_rouge_scorer_logs_nothing_at_info(tmp_path: Path) -> None:
    # absl wrote "INFO absl: Using default tokenizer." into every evaluation's log
    err = _stderr(
        tmp_path,
        "import logging\n"
        "from twin_core.cli.logs import setup_logging\n"
        "setup_logging('INFO')\n"
        "from twin_core.evaluation.metrics import rouge_l\n"
        "print(rouge_l(['the cat sat'], ['the cat sat']))\n"
        "logging.getLogger('absl').warning('an absl warning stays')\n"
        "logging.getLogger('twin_core.x').info('ours stays')\n",
    )
    lines = err.splitlines()
    assert [ln for ln in lines if "absl" in ln] == [next(ln for ln in lines if "an absl warning stays" in ln)]
    assert any("ours stays" in ln for ln in lines)


def test_an_offline_experiment_logs_no_misleading_warning(tmp_path: Path) -> None:
    # comet_ml warned "import comet_ml before the following modules: sklearn, torch" (auto-logging is off on
    # purpose) and, offline, "Failed to log ip"; its line on how to upload the archive must stay
    err = _stderr(
        tmp_path,
        "import torch, sklearn\n"
        "import comet_ml\n"  # as transformers' integrations import it, before our settings are read
        "from pathlib import Path\n"
        "from twin_core.settings import load_settings\n"
        "from twin_core.training.tracking import Tracker\n"
        "home = Path('home')\n"
        "t = Tracker(load_settings(home=home), home / 'comet', 'run', {'lr': 1e-4}, ['sft'], sample_system=False)\n"
        "print(t.end(home / 'model'))\n",
    )
    assert "import comet_ml before" not in err
    assert "Failed to log ip" not in err
    assert "comet upload" in err


def test_importing_trl_without_a_comet_key_asks_for_none(tmp_path: Path) -> None:
    # transformers said "comet_ml is installed but the Comet API Key is not configured. Please set ... to enable
    # Comet logging" in every training log: without a key Comet logs to an offline archive, as meant
    err = _stderr(
        tmp_path,
        "import logging\n"
        "from twin_core.cli.logs import setup_logging\n"
        "from twin_core.llm.comet import quiet_comet\n"
        "setup_logging('INFO')\n"
        "quiet_comet()\n"
        "import trl.trainer.utils\n"
        "logging.getLogger('transformers.integrations.integration_utils').warning('another probe warning stays')\n",
    )
    assert "Comet API Key is not configured" not in err
    assert "another probe warning stays" in err
