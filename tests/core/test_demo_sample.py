"""The sample corpus ships inside the package, so `twin demo` finds it from any install (no repo paths)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from support import REPO_ROOT

EXPECTED = (
    "UserDocument.json",
    "ArticleDocument.json",
    "PostDocument.json",
    "RepositoryDocument.json",
    "queries.jsonl",
    "site/blog.html",
    "site/substack.html",
    "repos/tiny-pipeline/README.md",
    "repos/tiny-pipeline/src/tiny_pipeline/load.py",
)


def _files(root: Path) -> list[str]:
    skip = {"__pycache__"}
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not skip & set(p.parts))


def test_the_fixture_is_the_packaged_corpus(sample_dir: Path) -> None:
    from twin_core.demo import sample_dir as packaged

    assert packaged() == sample_dir
    for name in EXPECTED:
        assert (sample_dir / name).is_file(), name


def test_demo_defaults_to_the_packaged_corpus(sample_dir: Path) -> None:
    import inspect

    from twin_core.cli.demo import app

    assert inspect.signature(app).parameters["sample"].default.default == sample_dir


def test_a_wheel_carries_every_sample_file_and_finds_it(tmp_path: Path, sample_dir: Path) -> None:
    """Build the wheel as an image does (non-editable) and look the corpus up from the unpacked wheel."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, project / name)
    shutil.copytree(REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path / "wheel"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = out.glob("twin_core-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in _files(sample_dir) if f"twin_core/demo/sample/{f}" not in names]
    assert missing == []

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # -S: no site-packages, so only the unpacked wheel (not the editable checkout) provides twin_core
    found = subprocess.run(
        [sys.executable, "-S", "-c", "import twin_core.demo as d; print(d.sample_dir())"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(unpacked)},
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    located = Path(found.stdout.strip())
    assert located == unpacked / "twin_core" / "demo" / "sample"
    assert _files(located) == _files(sample_dir)
