"""Kubernetes mode opens no embedded store: a pod's TWIN_HOME is deleted with the pod, so a step that fell
back to litemongo, Qdrant local mode or the local artifacts folder would "succeed" and lose what it wrote.
An unset TWIN_MONGODB_URI / TWIN_QDRANT_URL / TWIN_ARTIFACTS_URI is a ConfigError when that store is
opened (exit code 2 from the CLI), and nothing is written; settings still load, and local mode keeps
its embedded defaults."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from twin_core.errors import BackendUnavailable, ConfigError
from twin_core.settings import load_settings
from twin_core.stores.artifacts import open_artifact_store
from twin_core.stores.registry import open_registry
from twin_core.stores.vectors import open_vector_store
from twin_core.stores.warehouse import open_warehouse

OPENERS: dict[str, Callable[[Any], Any]] = {
    "warehouse": open_warehouse,
    "vector store": open_vector_store,
    "artifact store": open_artifact_store,
    "registry": open_registry,
}
EMBEDDED = {
    "warehouse": "warehouse (litemongo)",
    "vector store": "vector store (Qdrant local mode)",
    "artifact store": "artifact store (a local folder)",
    "registry": "artifact store (a local folder)",
}


def _refusal(variables: str, store: str, home: Path) -> str:
    return (
        f"{variables}: unset in kubernetes mode, and the embedded {store} would live under TWIN_HOME ({home}), "
        "deleted with the pod: refused, nothing written. Pods get these variables from the ConfigMap "
        "llm-twin-settings and the optional Secret llm-twin-secrets: check both exist in the pod's namespace "
        "with these keys (docs/deploy.md). Outside a pod, set TWIN_EXECUTION=local."
    )


def test_the_refusal_reads_in_full(twin_home: Path) -> None:
    settings = load_settings(execution="kubernetes")  # loading is fine: only opening an embedded store is not
    with pytest.raises(ConfigError) as err:
        open_warehouse(settings)
    assert str(err.value) == (
        "TWIN_MONGODB_URI, TWIN_QDRANT_URL, TWIN_ARTIFACTS_URI: unset in kubernetes mode, and the embedded "
        f"warehouse (litemongo) would live under TWIN_HOME ({twin_home}), deleted with the pod: refused, nothing "
        "written. Pods get these variables from the ConfigMap llm-twin-settings and the optional Secret "
        "llm-twin-secrets: check both exist in the pod's namespace with these keys (docs/deploy.md). Outside "
        "a pod, set TWIN_EXECUTION=local."
    )
    assert err.value.exit_code == 2
    assert not twin_home.exists()  # nothing was created, let alone written


@pytest.mark.parametrize(
    ("store", "needed_first"),
    [
        ("warehouse", "TWIN_MONGODB_URI, TWIN_QDRANT_URL, TWIN_ARTIFACTS_URI"),
        ("vector store", "TWIN_QDRANT_URL, TWIN_MONGODB_URI, TWIN_ARTIFACTS_URI"),
        ("artifact store", "TWIN_ARTIFACTS_URI, TWIN_MONGODB_URI, TWIN_QDRANT_URL"),
        ("registry", "TWIN_ARTIFACTS_URI, TWIN_MONGODB_URI, TWIN_QDRANT_URL"),
    ],
)
def test_no_embedded_store_opens_in_kubernetes_mode(twin_home: Path, store: str, needed_first: str) -> None:
    settings = load_settings(execution="kubernetes")
    with pytest.raises(ConfigError) as err:
        OPENERS[store](settings)
    assert str(err.value) == _refusal(needed_first, EMBEDDED[store], twin_home)
    assert not twin_home.exists()


def test_the_refusal_names_only_what_is_unset(twin_home: Path, tmp_path: Path) -> None:
    """The variable this store needs first, then the other unset ones; a set variable is never named."""
    settings = load_settings(execution="kubernetes", mongodb_uri="mongodb://127.0.0.1:1")
    with pytest.raises(ConfigError) as err:
        open_artifact_store(settings)
    assert str(err.value) == _refusal("TWIN_ARTIFACTS_URI, TWIN_QDRANT_URL", EMBEDDED["artifact store"], twin_home)
    settings = load_settings(
        execution="kubernetes", mongodb_uri="mongodb://127.0.0.1:1", artifacts_uri=str(tmp_path / "volume")
    )
    with pytest.raises(ConfigError) as err:
        open_vector_store(settings)
    assert str(err.value) == _refusal("TWIN_QDRANT_URL", EMBEDDED["vector store"], twin_home)
    assert not twin_home.exists()


def test_a_configured_store_opens_in_kubernetes_mode(twin_home: Path, tmp_path: Path) -> None:
    """A URL set: the server path (here unreachable: BackendUnavailable, not the refusal). An explicit
    artifacts path (a mounted volume) is the user's choice and opens."""
    volume = tmp_path / "volume"
    settings = load_settings(
        execution="kubernetes", qdrant_url="http://127.0.0.1:1", qdrant_timeout_s=1, artifacts_uri=str(volume)
    )
    with pytest.raises(BackendUnavailable) as err:
        open_vector_store(settings)
    assert str(err.value).startswith("Qdrant at http://127.0.0.1:1 unreachable (TWIN_QDRANT_URL): ")
    store = open_artifact_store(settings)
    store.put_json("reports/run.json", {"ok": 1})
    assert store.get_json("reports/run.json") == {"ok": 1}
    assert (volume / "reports" / "run.json").is_file()
    assert not twin_home.exists()


def test_local_mode_keeps_the_embedded_stores(twin_home: Path) -> None:
    settings = load_settings()
    assert settings.execution == "local"
    warehouse = open_warehouse(settings)
    user, created = warehouse.get_or_create_user("Ada Quillfeather")
    assert created and [u.full_name for u in warehouse.users()] == ["Ada Quillfeather"]
    warehouse.close()
    vectors = open_vector_store(settings)
    vectors.ensure_collection("cleaned_posts", None)
    assert vectors.has_collection("cleaned_posts")
    vectors.close()
    open_artifact_store(settings).put_json("reports/run.json", {"ok": 1})
    assert open_registry(settings).list() == []
    assert (twin_home / "warehouse").is_dir()
    assert (twin_home / "qdrant").is_dir()
    assert (twin_home / "artifacts" / "reports" / "run.json").is_file()


def test_the_cli_step_fails_with_exit_2_and_writes_nothing(twin, twin_home: Path, sample_dir: Path) -> None:
    pod = {"TWIN_EXECUTION": "kubernetes", "TWIN_ARTIFACTS_URI": "s3://llm-twin/artifacts"}
    run = twin("warehouse", "import", str(sample_dir), env=pod)
    assert run.returncode == 2, run.stderr
    assert run.stdout.count("\n") == 1  # one JSON result line
    assert run.result is not None and isinstance(run.result.pop("seconds"), float)
    assert run.result == {
        "status": "error",
        "step": "warehouse.import",
        "kind": "config",
        "error": _refusal("TWIN_MONGODB_URI, TWIN_QDRANT_URL", EMBEDDED["warehouse"], twin_home),
    }
    assert "Traceback" not in run.stderr
    assert not twin_home.exists()
    assert twin("train", "profiles", env=pod).returncode == 0  # a command that opens no store still runs


def test_crawl_and_validate_fail_before_any_work_without_their_artifact_store(
    twin_home: Path, sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod whose MongoDB is configured (here: the embedded one let through) but TWIN_ARTIFACTS_URI is not:
    the crawl and the validation refuse before they write an author, a document or a quarantine flag. The
    crawl used to store its documents, then log the lost report as an error and succeed; the validation
    quarantined, then failed."""
    import twin_core.stores.mongo as mongo
    from twin_core.domain.documents import ArticleDocument, Category
    from twin_core.etl.runner import run_crawl
    from twin_core.validation.raw import validate_raw

    repo = tmp_path / "tiny-pipeline"
    shutil.copytree(sample_dir / "repos" / "tiny-pipeline", repo)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "test"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True)
    monkeypatch.setattr(mongo, "refuse_in_pod", lambda settings, variable: None)
    pod = load_settings(execution="kubernetes", crawl_allow_local_repos=True)
    refusal = _refusal("TWIN_ARTIFACTS_URI, TWIN_MONGODB_URI, TWIN_QDRANT_URL", EMBEDDED["artifact store"], twin_home)
    with pytest.raises(ConfigError) as err:
        run_crawl(pod, "Ada Quillfeather", [str(repo)])
    assert str(err.value) == refusal
    warehouse = open_warehouse(load_settings())
    assert warehouse.users() == [] and warehouse.count(Category.REPOSITORIES) == 0

    user, _ = warehouse.get_or_create_user("Ada Quillfeather")
    short = ArticleDocument(
        link="https://ada.dev/short",
        platform="blog",
        author_id=user.id,
        author_full_name=user.full_name,
        content={"Title": "T", "Content": "Too short.", "language": ""},
    )
    warehouse.upsert_document(short)
    with pytest.raises(ConfigError) as err:
        validate_raw(pod)
    assert str(err.value) == refusal
    assert warehouse.count(Category.ARTICLES, {"quarantined": True}) == 0
    validate_raw(load_settings(), max_failure_ratio=1.0)  # the control: in local mode it is quarantined
    assert warehouse.count(Category.ARTICLES, {"quarantined": True}) == 1
