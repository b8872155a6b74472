"""The `twin` CLI as a pipeline step: result protocol, exit codes, help, and a second process."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# One cheap invocation of every `twin` group and command on a fresh, empty home (or with bad input,
# which must still end in the JSON result line): (argv, expected exit code, expected step name).
ONE_PER_GROUP = [
    (["warehouse", "stats"], 0, "warehouse.stats"),
    (["etl", "crawlers"], 0, "etl.crawlers"),
    (["validate", "raw", "--max-failure-ratio", "7"], 2, "validate.raw"),  # a usage error: JSON too
    (["features", "run"], 0, "features.run"),
    (["datasets", "list"], 0, "datasets.list"),
    (["train", "profiles"], 0, "train.profiles"),
    (["evaluate", "--model", "nobody/v0001"], 3, "evaluate"),
    (["registry", "list"], 0, "registry.list"),
    (["serve", "--component", "bogus"], 3, "serve"),
    (["rag", "query", "hello", "--category", "nope"], 3, "rag.query"),
    (["deploy", "status"], 0, "deploy.status"),
    (["monitor", "drift", "--window", "bogus"], 3, "monitor.drift"),
    (["demo", "--sample", "/nonexistent"], 3, "demo"),
]


def test_help_lists_every_group(twin) -> None:
    run = twin("--help")
    assert run.returncode == 0
    for group in (
        "warehouse",
        "etl",
        "validate",
        "features",
        "datasets",
        "train",
        "evaluate",
        "registry",
        "serve",
        "rag",
        "deploy",
        "monitor",
        "demo",
    ):
        assert group in run.stdout


def test_import_stats_export_protocol(twin, twin_home: Path, tmp_path: Path, sample_dir: Path) -> None:
    run = twin("warehouse", "import", str(sample_dir))
    assert run.returncode == 0, run.stderr
    assert run.result["status"] == "ok"
    assert run.result["step"] == "warehouse.import"
    assert run.result["counts"]["users"]["created"] == 1
    again = twin("warehouse", "import", str(sample_dir))
    assert again.result["counts"]["posts"]["created"] == 0
    stats = twin("warehouse", "stats")
    assert stats.returncode == 0
    assert stats.result["authors"]["Ada Quillfeather"]["repositories"] == 2
    exported = twin("warehouse", "export", str(tmp_path / "out"))
    assert exported.returncode == 0
    assert (tmp_path / "out" / "ArticleDocument.json").is_file()
    (tmp_path / "a-file").write_text("kept")
    for dest in (tmp_path / "a-file", tmp_path / "a-file" / "under"):  # a file where the folder should be
        refused = twin("warehouse", "export", str(dest))
        assert (refused.returncode, refused.result["status"], refused.result["kind"]) == (3, "error", "input")
        assert refused.result["error"].startswith(f"cannot write the backup to {dest}: "), refused.result
        assert "Traceback" not in refused.stderr
    assert (tmp_path / "a-file").read_text() == "kept"


def test_result_is_also_written_as_xcom_file(twin, twin_home: Path, tmp_path: Path) -> None:
    xcom = tmp_path / "xcom" / "return.json"
    run = twin("warehouse", "stats", env={"TWIN_XCOM_PATH": str(xcom)})
    assert run.returncode == 0
    assert json.loads(xcom.read_text()) == run.result


def test_errors_exit_with_their_code_and_a_json_line(twin, twin_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "PostDocument.json"
    bad.write_text("not json")
    run = twin("warehouse", "import", str(bad))
    assert run.returncode == 3
    assert run.result["status"] == "error"
    assert run.result["kind"] == "input"
    assert "malformed JSON" in run.result["error"]
    cfg = twin("warehouse", "stats", env={"TWIN_EXECUTION": "docker"})
    assert cfg.returncode == 2
    assert cfg.result["error"].startswith("TWIN_EXECUTION")
    down = twin(
        "warehouse", "stats", env={"TWIN_MONGODB_URI": "mongodb://127.0.0.1:1", "TWIN_MONGODB_TIMEOUT_MS": "300"}
    )
    assert down.returncode == 4
    assert "127.0.0.1:1" in down.result["error"]


def test_rejected_records_make_a_partial_result(twin, twin_home: Path, tmp_path: Path) -> None:
    (tmp_path / "PostDocument.json").write_text(json.dumps([{"content": {"Content": "x"}, "author_full_name": "A B"}]))
    run = twin("warehouse", "import", str(tmp_path))
    assert run.returncode == 3
    assert run.result["status"] == "partial"
    assert run.result["rejected"][0]["reason"] == "missing field 'link'"


def test_importing_the_package_and_cli_does_no_io(tmp_path: Path) -> None:
    """Importing twin_core and the CLI opens no store, no socket and no model file."""
    code = (
        "import builtins, socket, sys\n"
        "opened = []\n"
        "real_open = builtins.open\n"
        "def spy(f, *a, **k):\n"
        "    opened.append(str(f)); return real_open(f, *a, **k)\n"
        "builtins.open = spy\n"
        "def no_socket(*a, **k): raise AssertionError('socket at import time')\n"
        "socket.socket.connect = no_socket\n"
        "import twin_core, twin_core.cli.main\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'kserve', 'great_expectations',"
        " 'evidently', 'qdrant_client', 'litemongo', 'selenium') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(opened)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"TWIN_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "home").exists()


def test_twin_core_never_imports_airflow() -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    offenders = [
        str(p)
        for p in src.rglob("*.py")
        if any(line.lstrip().startswith(("import airflow", "from airflow")) for line in p.read_text().splitlines())
    ]
    assert offenders == []


def test_the_table_covers_every_group() -> None:
    from twin_core.cli.main import app

    names = {g.name for g in app.registered_groups} | {c.name for c in app.registered_commands}
    assert names == {argv[0] for argv, _, _ in ONE_PER_GROUP}


@pytest.mark.parametrize(("argv", "code", "step"), ONE_PER_GROUP, ids=[a[0] for a, _, _ in ONE_PER_GROUP])
def test_every_group_prints_exactly_one_json_line(twin, twin_home: Path, argv: list[str], code: int, step: str) -> None:
    run = twin(*argv)
    assert run.returncode == code, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout[-2000:]
    assert json.loads(lines[0])["step"] == step


def test_stdout_written_inside_a_command_goes_to_stderr(tmp_path: Path) -> None:
    """A print, a library's write to sys.stdout and a child process's output (descriptor 1) all land
    on stderr: stdout holds the result line only."""
    code = textwrap.dedent(
        """
        import subprocess, sys
        from twin_core.cli.protocol import step

        @step("noisy")
        def noisy() -> dict:
            print("a print")
            sys.stdout.write("a library write\\n")
            subprocess.run([sys.executable, "-c", "print('a child process')"], check=True)
            return {"n": 1}

        noisy()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["n"] for line in out.stdout.splitlines()] == [1]
    for text in ("a print", "a library write", "a child process"):
        assert text in out.stderr


def test_an_unknown_author_is_an_error_naming_the_known_ones(twin, twin_home: Path, sample_dir: Path) -> None:
    # a typo in --author used to give an empty answer with exit 0: no hits, no versions, a drift report for nobody
    assert twin("warehouse", "import", str(sample_dir)).returncode == 0
    error = "no author named 'Ada Quilfeather' in the warehouse (known: Ada Quillfeather)"
    for args in (
        ("rag", "search", "idempotency"),
        ("monitor", "drift"),
        ("registry", "list"),
        ("deploy", "status"),
        ("datasets", "build"),
    ):
        run = twin(*args, "--author", "Ada Quilfeather")
        assert (run.returncode, run.result["kind"], run.result["error"]) == (3, "input", error), args
    assert not [p for p in (twin_home / "artifacts").rglob("*") if "quilfeather" in p.name]  # no report for nobody
    for author in ("ada quillfeather", "ada-quillfeather"):  # any case, or the slug
        listed = twin("registry", "list", "--author", author)
        assert (listed.returncode, listed.result["versions"]) == (0, []), listed.result


def test_every_author_form_finds_the_authors_own_data(twin, twin_home: Path, sample_dir: Path, tmp_path: Path) -> None:
    """--author takes a full name in any case, a slug or an id, and each command goes on with the stored full
    name: `registry list` and `deploy status` given the id listed nothing (the registry is keyed on the name)."""
    from core.test_registry import make_model

    from twin_core.cli.authors import require_author
    from twin_core.settings import get_settings
    from twin_core.stores.registry import open_registry
    from twin_core.stores.warehouse import open_warehouse

    assert twin("warehouse", "import", str(sample_dir)).returncode == 0
    settings = get_settings()
    (user,) = open_warehouse(settings).users()
    ref = open_registry(settings).register(user.full_name, make_model(tmp_path, "1"), {"kind": "sft"}).ref
    forms = ("ADA QUILLFEATHER", "ada-quillfeather", user.id)
    assert [require_author(settings, form) for form in forms] == [user.full_name] * 3
    assert require_author(settings, None) is None
    for form in forms:
        listed = twin("registry", "list", "--author", form)
        assert [v["ref"] for v in listed.result["versions"]] == [ref], form
        status = twin("deploy", "status", "--author", form)
        assert list(status.result["authors"]) == ["ada-quillfeather"], (form, status.result)
        # record-alerts looks for the window's check where `monitor drift` wrote it: under the full name
        end = "2026-11-21T12:00:00+00:00"
        recorded = twin("monitor", "record-alerts", "--delivered", "drift:query_length", "--end", end, "--author", form)
        assert recorded.returncode == 3 and "(author 'Ada Quillfeather')" in recorded.result["error"], recorded.result
