"""Keep N CPU cores busy for a while, to run tests on a loaded machine (issue 19: a "loaded 2-core laptop").

    python scripts/cpu_load.py --procs 2 --seconds 1800 -- python -m pytest tests/dags/test_airflow_e2e.py

Starts N busy-looping processes. With a command after ``--`` it runs that command under the load, stops
the load when the command ends and exits with the command's status; without one it loads until
``--seconds`` pass or SIGTERM / Ctrl-C. The busy processes also stop themselves at the limit, so none
outlives a killed parent by more than ``--seconds``. Standard library only: runs with any Python.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time


def _spin(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # terminate() ends a worker quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the workers
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def start(procs: int, seconds: float) -> list[mp.Process]:
    workers = [mp.Process(target=_spin, args=(seconds,), daemon=True) for _ in range(procs)]
    for w in workers:
        w.start()
    return workers


def stop(workers: list[mp.Process]) -> None:
    for w in workers:
        if w.is_alive():
            w.terminate()
    for w in workers:
        w.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2, help="busy processes (default: cores)")
    parser.add_argument("--seconds", type=float, default=3600, help="stop after this long at the latest")
    args = parser.parse_args(argv)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    workers = start(args.procs, args.seconds)
    print(f"cpu_load: {args.procs} busy processes for at most {args.seconds:.0f}s", file=sys.stderr, flush=True)
    try:
        if command:
            return subprocess.run(command).returncode
        for w in workers:
            w.join()
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        stop(workers)


if __name__ == "__main__":
    sys.exit(main())
