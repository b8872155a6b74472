"""Bad input: a clear report or error, nothing lost, nothing half-written."""

from __future__ import annotations

from typing import Any

import pytest
from support.ports import refused_port

from twin_core.domain.documents import ArticleDocument, PostDocument, RepositoryDocument
from twin_core.errors import BackendUnavailable, InputError
from twin_core.settings import updated

pytestmark = pytest.mark.slow


def _author(warehouse: Any) -> dict:
    user, _ = warehouse.get_or_create_user("Ada Quillfeather")
    return {"author_id": user.id, "author_full_name": user.full_name}


def test_bad_documents_are_reported_and_good_ones_kept(warehouse: Any, featurize: Any, points: Any) -> None:
    who = _author(warehouse)
    docs = [
        PostDocument(link="https://l/empty", platform="linkedin", content={}, **who),
        PostDocument(link="https://l/emoji", platform="linkedin", content={"Content": "🚀🔥\nhttps://t.co/x"}, **who),
        ArticleDocument(link="https://b/huge", platform="blog", content={"Content": "lorem ipsum " * 6000}, **who),
        RepositoryDocument(
            link="https://github.com/a/bin",
            platform="github",
            content={"img.png": "\x89PNG\x00", "ok.py": "def ok():\n    return True\n"},
            **who,
        ),
        RepositoryDocument(link="https://github.com/a/allbin", platform="github", content={"x": "\x00\x01"}, **who),
    ]
    for d in docs:
        warehouse.upsert_document(d)
    result = featurize()
    assert result["processed"] == 5
    assert sorted(s["link"] for s in result["skipped_documents"]) == [
        "https://github.com/a/allbin",
        "https://l/emoji",
        "https://l/empty",
    ]
    got = points()
    huge = [p for p in got.values() if p["link"] == "https://b/huge"]
    assert len(huge) > 20
    assert all(p["token_count"] <= 256 for p in huge)
    assert [p["content"] for p in got.values() if p["link"] == "https://github.com/a/bin"] == [
        "# ok.py\ndef ok():\n    return True"
    ]
    again = featurize()  # skipped documents are remembered, not retried until they change
    assert again["processed"] == 0
    assert again["unchanged"] == 5


def test_unknown_author_is_an_input_error(warehouse: Any, featurize: Any) -> None:
    _author(warehouse)
    with pytest.raises(InputError, match="no author named 'Nobody'.*Ada Quillfeather"):
        featurize(author="Nobody")


def test_unreachable_qdrant_fails_fast_and_the_run_resumes(
    warehouse: Any, featurize: Any, settings: Any, twin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse.upsert_document(
        PostDocument(link="https://l/1", platform="linkedin", content={"Content": "Hello there."}, **_author(warehouse))
    )
    from twin_core.features.pipeline import run_features

    with refused_port() as port:
        run = twin("features", "run", env={"TWIN_QDRANT_URL": f"http://127.0.0.1:{port}"})
        assert run.returncode == 4, run.stderr
        assert run.result["kind"] == "unavailable"
        assert "TWIN_QDRANT_URL" in run.result["error"]
        assert "loading embedding model" not in run.stderr  # failed before any heavy work

        bad = updated(settings, qdrant_url=f"http://127.0.0.1:{port}")
        with pytest.raises(BackendUnavailable):
            run_features(bad)
    result = featurize()  # the same run against the reachable store completes
    assert result["processed"] == 1
    assert result["points"] == 1
