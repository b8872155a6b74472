"""Training test fixtures (helpers in training_fixtures.py): a TWIN_HOME with tiny dataset versions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make the helpers importable
from training_fixtures import TINY_ENV, sample_rows, write_dataset  # noqa: E402


@pytest.fixture(scope="session")
def llm_models_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("twin-llm-models"))


@pytest.fixture(scope="session")
def tiny_random(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path) -> Path:
    """A training profile on a tiny random Llama: for tests of resume and registration, not of learning."""
    from training_fixtures import tiny_random_profile

    from twin_core.llm.base_model import resolve_base
    from twin_core.settings import load_settings

    source = Path(resolve_base(load_settings(llm_models_dir=llm_models_dir), "packaged"))
    return tiny_random_profile(tmp_path_factory.mktemp("tiny-random"), source)


@pytest.fixture
def train_env(twin_home: Path, llm_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**TINY_ENV, "TWIN_HOME": str(twin_home), "TWIN_LLM_MODELS_DIR": str(llm_models_dir)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    from twin_core.settings import get_settings

    get_settings.cache_clear()
    return env


@pytest.fixture
def tsettings(train_env: dict[str, str]) -> Any:
    from twin_core.settings import get_settings

    return get_settings()


@pytest.fixture
def instruct_version(tsettings: Any) -> str:
    train, test = sample_rows()
    return write_dataset(tsettings, "instruct", train, test)


@pytest.fixture
def preference_version(tsettings: Any) -> str:
    train, test = sample_rows(n_train=6, n_test=2)
    return write_dataset(tsettings, "preference", train, test)
