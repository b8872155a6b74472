from pathlib import Path

import pytest

from twin_core.errors import ConfigError
from twin_core.settings import load_settings, updated


def test_defaults_select_embedded_stores(twin_home: Path) -> None:
    s = load_settings()
    assert s.home == twin_home
    assert s.mongodb_uri is None
    assert s.qdrant_url is None
    assert s.artifacts_location == str(twin_home / "artifacts")
    assert s.warehouse_path == twin_home / "warehouse"
    assert s.execution == "local"


def test_env_and_dotenv(twin_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TWIN_QDRANT_URL=http://qdrant:6333\nTWIN_EXECUTION=kubernetes\n")
    monkeypatch.setenv("TWIN_MONGODB_URI", "mongodb://db:27017")
    s = load_settings()
    assert s.qdrant_url == "http://qdrant:6333"
    assert s.execution == "kubernetes"
    assert s.mongodb_uri == "mongodb://db:27017"


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("TWIN_EXECUTION", "docker", "TWIN_EXECUTION"),
        ("TWIN_MONGODB_URI", "postgres://x", "TWIN_MONGODB_URI"),
        ("TWIN_QDRANT_URL", "qdrant:6333", "TWIN_QDRANT_URL"),
        ("TWIN_MONGODB_TIMEOUT_MS", "-1", "TWIN_MONGODB_TIMEOUT_MS"),
    ],
)
def test_invalid_setting_names_the_variable(
    twin_home: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith(fragment)
    assert "\n" not in message


def test_group_reads_its_own_variable(twin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_RAG_TOP_K", "7")
    monkeypatch.setenv("TWIN_CRAWL_TIMEOUT_S", "2.5")
    monkeypatch.setenv("TWIN_LINKEDIN_MAX_POSTS", "3")
    s = load_settings()
    assert s.rag.top_k == 7
    assert s.crawl.timeout_s == 2.5
    assert s.sources.linkedin_max_posts == 3
    assert s.llm.threads == 0


def test_invalid_group_variable_names_the_variable(twin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_RAG_TOP_K", "0")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith("TWIN_RAG_TOP_K: ")
    assert "\n" not in message


def test_overrides_take_flat_names(twin_home: Path) -> None:
    s = load_settings(llm_threads=1, home=twin_home / "x")
    assert s.llm.threads == 1
    assert s.home == twin_home / "x"


def test_updated_is_a_validated_copy(twin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = load_settings()
    monkeypatch.setenv("TWIN_RAG_CANDIDATES", "99")  # set after loading: a copy does not re-read the environment
    copy = updated(base, rag_top_k=3, qdrant_url="http://q:6333")
    assert copy.rag.top_k == 3
    assert copy.rag.candidates == base.rag.candidates == 20
    assert copy.qdrant_url == "http://q:6333"
    assert base.rag.top_k == 5
    assert base.qdrant_url is None


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"rag_top_k": 0}, "TWIN_RAG_TOP_K: "),
        ({"qdrant_url": "qdrant:6333"}, "TWIN_QDRANT_URL: "),
        ({"rag_topk": 3}, "TWIN_RAG_TOPK: no such setting"),
    ],
)
def test_updated_refuses_a_bad_value_or_name(twin_home: Path, override: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        updated(load_settings(), **override)
    message = str(err.value)
    assert message.startswith(fragment)
    assert "\n" not in message


def test_an_empty_variable_means_the_default(twin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_core.llm.loading import models_dir

    monkeypatch.setenv("TWIN_LLM_MODELS_DIR", "")
    monkeypatch.setenv("TWIN_EVAL_CONFIG", "")
    monkeypatch.setenv("TWIN_HOME", "")
    assert load_settings().eval.config is None
    assert load_settings().home == Path(".twin")
    monkeypatch.setenv("TWIN_HOME", str(twin_home))
    assert load_settings().llm.models_dir is None
    assert models_dir(load_settings()) == twin_home / "models"  # not the working directory
    monkeypatch.setenv("TWIN_LLM_MODELS_DIR", "/srv/models")
    assert models_dir(load_settings()) == Path("/srv/models")
