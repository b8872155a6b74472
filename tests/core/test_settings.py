from pathlib import Path

import pytest

from twin_core.errors import ConfigError
from twin_core.settings import load_settings


def test_defaults_select_embedded_stores(twin_home: Path) -> None:
    s = load_settings()
    assert s.home == twin_home
    assert s.mongodb_uri is None and s.qdrant_url is None
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
