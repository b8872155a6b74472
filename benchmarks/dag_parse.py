"""DAG file parse time: each file under dags/ imported in a fresh Airflow-env interpreter.

Run with the Airflow environment: `.venv-airflow/bin/python benchmarks/dag_parse.py`.
Goal: well under 1 s per file (the DAG processor re-parses files continuously). The time of a bare
`import airflow.sdk` is measured in the same run and subtracted, giving the file's own cost.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 5

PROBE = """
import sys, time
sys.path.insert(0, {plugins!r})
import airflow.sdk  # the baseline every DAG file pays
{warm}
t = time.perf_counter()
{body}
print(time.perf_counter() - t)
"""


# The DAG processor pre-imports the modules DAG files import (`[dag_processor]
# parsing_pre_import_modules`, on by default) before it forks a parser, so the provider's import
# cost is paid once per processor, not per file: the "warm" column measures that situation.
WARM = "import airflow.providers.cncf.kubernetes.operators.pod, airflow.providers.standard"


def _time(body: str, mode: str, warm: bool) -> float:
    env = {
        **os.environ,
        "AIRFLOW_HOME": tempfile.mkdtemp(prefix="af-bench-"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "TWIN_EXECUTION": mode,
    }
    code = PROBE.format(plugins=str(REPO / "plugins"), body=body, warm=WARM if warm else "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print(f"{'dag file':28} {'mode':11} {'cold median s':>14} {'warm median s':>14} {'warm max s':>11}")
    for dag_file in sorted((REPO / "dags").glob("*.py")):
        body = f"import runpy; runpy.run_path({str(dag_file)!r})"
        for mode in ("local", "kubernetes"):
            cold = [_time(body, mode, warm=False) for _ in range(RUNS)]
            warm = [_time(body, mode, warm=True) for _ in range(RUNS)]
            print(
                f"{dag_file.name:28} {mode:11} {statistics.median(cold):14.3f} {statistics.median(warm):14.3f}"
                f" {max(warm):11.3f}"
            )


if __name__ == "__main__":
    main()
