"""Model registry: versions on the artifact store, stages, history, rollback, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin_core.errors import InputError
from twin_core.settings import load_settings
from twin_core.stores.registry import ModelRegistry, open_registry, parse_ref

AUTHOR = "Ada Quillfeather"


def make_model(root: Path, tag: str) -> Path:
    """A small model folder in the layout training writes (merged/, adapter/, comet/)."""
    folder = root / f"model-{tag}"
    (folder / "merged").mkdir(parents=True)
    (folder / "merged" / "config.json").write_text(json.dumps({"model_type": "llama", "tag": tag}))
    (folder / "merged" / "model.safetensors").write_bytes(tag.encode() * 1000)
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    (folder / "comet").mkdir()
    (folder / "comet" / "offline.zip").write_bytes(b"PK")
    return folder


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path: Path) -> ModelRegistry:
    if request.param == "local":
        return open_registry(load_settings(home=tmp_path / "home"))
    endpoint = request.getfixturevalue("s3_endpoint")  # moto's S3 server on 127.0.0.1 (tests/core/conftest.py)
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="twin")  # us-east-1: re-creating is a no-op
    prefix = tmp_path.name  # moto keeps one in-memory S3 per process: a prefix per test
    return open_registry(
        load_settings(home=tmp_path / "home", artifacts_uri=f"s3://twin/{prefix}", s3_endpoint_url=endpoint)
    )


def test_register_is_a_complete_candidate_and_idempotent(registry: ModelRegistry, tmp_path: Path) -> None:
    meta = {"base_model": "smollm2", "dataset_versions": ["instruct/ada-quillfeather/v0001"], "metrics": {"ppl": 9.5}}
    mv = registry.register(AUTHOR, make_model(tmp_path, "a"), meta)
    assert (mv.ref, mv.version, mv.author_slug, mv.stage) == (
        "ada-quillfeather/v0001",
        "v0001",
        "ada-quillfeather",
        "candidate",
    )
    assert mv.metadata["base_model"] == "smollm2" and len(mv.metadata["content_hash"]) == 64
    assert mv.storage_uri.endswith("models/ada-quillfeather/v0001/merged")
    assert mv.adapter_uri.endswith("models/ada-quillfeather/v0001/adapter")
    assert "merged/model.safetensors" in mv.files and "comet/offline.zip" in mv.files
    assert [(h.from_stage, h.to_stage, h.reason) for h in mv.history] == [(None, "candidate", "registered")]
    assert mv.history[0].numbers == {"ppl": 9.5}
    again = registry.register(AUTHOR, make_model(tmp_path / "copy", "a"), meta)
    assert again.ref == mv.ref  # same content -> the same version
    other = registry.register(AUTHOR, make_model(tmp_path, "b"), meta)
    assert other.version == "v0002"
    assert [m.ref for m in registry.list()] == ["ada-quillfeather/v0001", "ada-quillfeather/v0002"]
    assert registry.list("Someone Else") == []
    weights = registry.local_weights(mv.ref)
    assert json.loads((weights / "config.json").read_text())["tag"] == "a"
    assert (weights / "model.safetensors").read_bytes() == b"a" * 1000


def test_promote_archives_previous_production_and_rollback(registry: ModelRegistry, tmp_path: Path) -> None:
    v1 = registry.register(AUTHOR, make_model(tmp_path, "1"), {}).ref
    v2 = registry.register(AUTHOR, make_model(tmp_path, "2"), {}).ref
    v3 = registry.register(AUTHOR, make_model(tmp_path, "3"), {}).ref
    assert registry.production(AUTHOR) is None
    registry.set_stage(v1, "production", "first", numbers={"win_rate": 0.6})
    registry.set_stage(v2, "canary", "try v2", canary_percent=25)
    assert registry.canary(AUTHOR).ref == v2 and registry.canary(AUTHOR).canary_percent == 25
    registry.set_stage(v2, "production", "canary passed")
    assert registry.production(AUTHOR).ref == v2 and registry.canary(AUTHOR) is None
    old = registry.get(v1)
    assert old.stage == "archived"
    assert [(h.from_stage, h.to_stage) for h in old.history] == [
        (None, "candidate"),
        ("candidate", "production"),
        ("production", "archived"),
    ]
    assert old.history[1].numbers == {"win_rate": 0.6} and old.history[2].reason.startswith(f"replaced by {v2}")
    registry.set_stage(v3, "production", "v3")
    back = registry.rollback(AUTHOR, "latency regression")
    assert back.ref == v2 and registry.production(AUTHOR).ref == v2
    assert registry.get(v3).stage == "archived"
    assert back.history[-1].reason == "rollback: latency regression"
    assert registry.rollback(AUTHOR, "again").ref == v1  # the stack goes further back
    with pytest.raises(InputError, match="no previous production"):
        registry.rollback(AUTHOR, "nothing left")


def test_an_archived_version_is_never_rolled_back_to(registry: ModelRegistry, tmp_path: Path) -> None:
    """promote v2, promote v4, rollback (v2), archive v2, rollback: nothing left, v2 stays archived."""
    v1, v2, v3, v4 = (registry.register(AUTHOR, make_model(tmp_path, str(i)), {}).ref for i in range(1, 5))
    registry.set_stage(v2, "production", "v2")
    registry.set_stage(v4, "production", "v4")
    assert registry.rollback(AUTHOR, "v4 regressed").ref == v2
    registry.archive(v2, "retired")
    state_before = registry.store.get_bytes("models/ada-quillfeather/registry.json")
    with pytest.raises(InputError) as err:
        registry.rollback(AUTHOR, "again")
    assert str(err.value) == (
        f"{AUTHOR}: no previous production version left to roll back to (no production version now; archived "
        "versions are not brought back: promote one with twin registry promote REF --stage production)"
    )
    assert registry.store.get_bytes("models/ada-quillfeather/registry.json") == state_before
    assert registry.get(v2).stage == "archived" and registry.production(AUTHOR) is None
    # archiving one on the stack below the production: the rollback passes over it
    registry.set_stage(v1, "production", "v1")
    registry.set_stage(v3, "production", "v3")
    registry.set_stage(v4, "production", "v4 again")
    registry.archive(v3, "bad data")
    assert registry.rollback(AUTHOR, "v4 again regressed").ref == v1
    assert registry.get(v3).stage == "archived" and registry.get(v4).stage == "archived"


def _stack(registry: ModelRegistry) -> list[str]:
    return registry.store.get_json("models/ada-quillfeather/registry.json")["production_stack"]


def _orders(registry: ModelRegistry) -> dict[str, int | None]:
    return {mv.version: mv.rollback_order for mv in registry.list(AUTHOR)}


def test_a_rolled_back_version_leaves_the_stack_for_good(registry: ModelRegistry, tmp_path: Path) -> None:
    """promote v1, v2, v3, rollback, rollback, promote v4, rollback; then promote v2 again, rollback:
    no rolled-back version comes back by a rollback, the stack holds no duplicate, and every version
    says which rollback would restore it and, rolled back, when and why."""
    v1, v2, v3, v4 = (registry.register(AUTHOR, make_model(tmp_path, str(i)), {}).ref for i in range(1, 5))
    for ref in (v1, v2, v3):
        registry.set_stage(ref, "production", "p")
    assert _stack(registry) == ["v0001", "v0002", "v0003"]
    assert _orders(registry) == {"v0001": 2, "v0002": 1, "v0003": None, "v0004": None}
    assert registry.rollback(AUTHOR, "v3 slow").ref == v2
    assert _stack(registry) == ["v0001", "v0002"]
    rolled = registry.get(v3).rolled_back
    assert rolled is not None and rolled.reason == f"rolled back to {v2}: v3 slow"
    assert (rolled.from_stage, rolled.to_stage) == ("production", "archived") and rolled.at
    assert registry.rollback(AUTHOR, "v2 wrong").ref == v1
    assert _stack(registry) == ["v0001"]
    registry.set_stage(v4, "production", "p")
    assert _stack(registry) == ["v0001", "v0004"]
    assert _orders(registry) == {"v0001": 1, "v0002": None, "v0003": None, "v0004": None}
    assert registry.rollback(AUTHOR, "v4 bad").ref == v1
    assert _stack(registry) == ["v0001"]
    with pytest.raises(InputError, match="no previous production"):  # v2, v3, v4 were rolled back
        registry.rollback(AUTHOR, "again")
    assert [mv.version for mv in registry.list(AUTHOR) if mv.rolled_back] == ["v0002", "v0003", "v0004"]
    assert registry.get(v1).rolled_back is None and registry.get(v1).stage == "production"
    registry.set_stage(v2, "production", "fixed after all")  # an explicit promotion brings it back
    assert _stack(registry) == ["v0001", "v0002"] and registry.get(v2).rolled_back is None
    assert registry.rollback(AUTHOR, "v2 bad again").ref == v1
    assert _stack(registry) == ["v0001"]
    assert registry.get(v2).rolled_back.reason == f"rolled back to {v1}: v2 bad again"


def test_a_production_moved_off_by_hand_is_not_rolled_back_to(registry: ModelRegistry, tmp_path: Path) -> None:
    """promote v1, v2, v3, move v3 to candidate (or canary): a rollback restores v2, not v3 again."""
    v1, v2, v3 = (registry.register(AUTHOR, make_model(tmp_path, str(i)), {}).ref for i in range(1, 4))
    for ref in (v1, v2, v3):
        registry.set_stage(ref, "production", "p")
    registry.set_stage(v3, "candidate", "not ready")
    assert _stack(registry) == ["v0001", "v0002"] and registry.production(AUTHOR) is None
    assert _orders(registry) == {"v0001": 2, "v0002": 1, "v0003": None}
    assert registry.rollback(AUTHOR, "back to v2").ref == v2
    assert registry.get(v3).stage == "candidate"
    registry.set_stage(v2, "canary", "retry", canary_percent=10)  # the production made a canary by hand
    assert _stack(registry) == ["v0001"]
    assert registry.rollback(AUTHOR, "back to v1").ref == v1 and registry.canary(AUTHOR).ref == v2


def test_bad_requests_change_nothing(registry: ModelRegistry, tmp_path: Path) -> None:
    ref = registry.register(AUTHOR, make_model(tmp_path, "1"), {}).ref
    state_before = registry.store.get_bytes("models/ada-quillfeather/registry.json")
    for bad in ("ada-quillfeather/v0009", "nobody/v0001", "v0001", "../x/v0001"):
        with pytest.raises(InputError):
            registry.set_stage(bad, "production", "x")
    with pytest.raises(InputError, match="unknown stage"):
        registry.set_stage(ref, "prod", "x")
    with pytest.raises(InputError, match="between 1 and 99"):
        registry.set_stage(ref, "canary", "x", canary_percent=0)
    with pytest.raises(InputError, match="no previous production"):
        registry.rollback(AUTHOR, "x")
    assert registry.store.get_bytes("models/ada-quillfeather/registry.json") == state_before
    with pytest.raises(InputError, match="merged/config.json"):
        registry.register(AUTHOR, tmp_path, {})
    same = registry.set_stage(ref, "candidate", "no-op")
    assert len(same.history) == 1


def test_a_version_without_metadata_does_not_exist(tmp_path: Path) -> None:
    """A registration killed before metadata.json leaves no version; one killed before registry.json is a candidate."""
    reg = open_registry(load_settings(home=tmp_path / "home"))
    reg.store.put_bytes("models/ada-quillfeather/v0001/merged/config.json", b"{}")  # half upload
    assert reg.list() == []
    with pytest.raises(InputError):
        reg.get("ada-quillfeather/v0001")
    reg.store.put_json("models/ada-quillfeather/v0002/metadata.json", {"author": AUTHOR, "files": []})
    mv = reg.get("ada-quillfeather/v0002")
    assert mv.stage == "candidate" and mv.author == AUTHOR


def test_parse_ref() -> None:
    assert parse_ref("ada-quillfeather/v0012") == ("ada-quillfeather", "v0012")
    with pytest.raises(InputError, match="expected <author_slug>/vNNNN"):
        parse_ref("Ada Quillfeather/v1")


def test_cli_list_show_promote_rollback_archive(twin, settings, tmp_path: Path) -> None:
    reg = open_registry(settings)
    v1 = reg.register(AUTHOR, make_model(tmp_path, "1"), {"base_model": "smollm2", "kind": "sft"}).ref
    v2 = reg.register(AUTHOR, make_model(tmp_path, "2"), {"base_model": "smollm2", "kind": "dpo"}).ref

    listed = twin("registry", "list")
    assert listed.returncode == 0, listed.stderr
    assert [v["ref"] for v in listed.result["versions"]] == [v1, v2]
    assert twin("registry", "promote", v1, "--stage", "production", "--reason", "first").returncode == 0
    run = twin("registry", "promote", v2, "--stage", "canary", "--percent", "20")
    assert run.returncode == 0 and run.result["model"]["canary_percent"] == 20
    run = twin("registry", "promote", v2, "--stage", "production")
    assert run.result["from_stage"] == "canary" and run.result["model"]["stage"] == "production"
    again = twin("registry", "promote", v2, "--stage", "production")
    assert again.returncode == 0 and again.result["status"] == "unchanged"

    shown = twin("registry", "show", v1)
    history = shown.result["model"]["history"]
    assert [(h["from_stage"], h["to_stage"], h["reason"]) for h in history] == [
        (None, "candidate", "registered"),
        ("candidate", "production", "first"),
        ("production", "archived", f"replaced by {v2}: manual promotion"),
    ]
    assert all(h["at"] for h in history)

    listed = twin("registry", "list")
    assert [(v["ref"], v["rollback_order"], v["rolled_back"]) for v in listed.result["versions"]] == [
        (v1, 1, None),
        (v2, None, None),
    ]
    back = twin("registry", "rollback", "--author", AUTHOR, "--reason", "bad answers")
    assert back.returncode == 0 and back.result["model"]["ref"] == v1 and back.result["replaced"] == v2
    assert back.result["restored"] == v1
    assert reg.production(AUTHOR).ref == v1
    listed = twin("registry", "list")
    rows = {v["ref"]: v for v in listed.result["versions"]}
    assert (rows[v1]["stage"], rows[v1]["rollback_order"], rows[v1]["rolled_back"]) == ("production", None, None)
    assert (rows[v2]["stage"], rows[v2]["rollback_order"]) == ("archived", None)
    assert rows[v2]["rolled_back"]["reason"] == f"rolled back to {v1}: bad answers"
    assert rows[v2]["rolled_back"]["from_stage"] == "production" and rows[v2]["rolled_back"]["at"]
    shown = twin("registry", "show", v2).result["model"]
    assert shown["rolled_back"]["reason"] == f"rolled back to {v1}: bad answers" and shown["rollback_order"] is None

    state = (settings.home / "artifacts" / "models" / "ada-quillfeather" / "registry.json").read_bytes()
    unknown = twin("registry", "promote", "ada-quillfeather/v0042", "--stage", "production")
    assert unknown.returncode == 3 and "unknown model version" in unknown.result["error"]
    assert twin("registry", "show", "nope").returncode == 3
    assert twin("registry", "promote", v2, "--stage", "best").returncode == 3
    assert (settings.home / "artifacts" / "models" / "ada-quillfeather" / "registry.json").read_bytes() == state

    archived = twin("registry", "archive", v1, "--reason", "retired")
    assert archived.returncode == 0 and archived.result["model"]["stage"] == "archived"
    assert reg.production(AUTHOR) is None

    state = (settings.home / "artifacts" / "models" / "ada-quillfeather" / "registry.json").read_bytes()
    none_left = twin("registry", "rollback", "--author", AUTHOR)  # v1 archived on purpose: not brought back
    assert none_left.returncode == 3
    assert "no previous production version left to roll back to" in none_left.result["error"]
    assert (settings.home / "artifacts" / "models" / "ada-quillfeather" / "registry.json").read_bytes() == state
    assert reg.get(v1).stage == "archived"


def test_a_rolled_back_canary_is_listed_with_its_reason(twin, settings, tmp_path: Path) -> None:
    """twin deploy's canary rollback archives the canary: the listing names it rolled back, and why."""
    from twin_core.deploy import rollout

    reg = open_registry(settings)
    v1, v2 = (reg.register(AUTHOR, make_model(tmp_path, str(i)), {}).ref for i in (1, 2))
    reg.set_stage(v1, "production", "p")
    rollout.start_canary(settings, v2, 10)
    rollout.rollback(settings, ref=v2, reason="error rate")
    rows = {v["ref"]: v for v in twin("registry", "list").result["versions"]}
    assert rows[v2]["stage"] == "archived" and rows[v2]["rollback_order"] is None
    assert rows[v2]["rolled_back"]["reason"] == "canary rolled back: error rate"
    assert rows[v2]["rolled_back"]["from_stage"] == "canary"
    assert rows[v1]["rolled_back"] is None and rows[v1]["stage"] == "production"
    reg.archive(v1, "retired")  # archived on purpose: not a rollback
    assert reg.get(v1).rolled_back is None and reg.get(v1).rollback_order is None
