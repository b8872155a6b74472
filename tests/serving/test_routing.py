"""The canary split: a pure function of (client, author, canary version); no model needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from twin_core.serving.routing import bucket, client_id_of, goes_to_canary, split_key


def test_ten_percent_canary_over_2000_clients() -> None:
    clients = [f"client-{i}" for i in range(2000)]
    to_canary = [c for c in clients if goes_to_canary(c, "ada-quillfeather", "ada-quillfeather/v0002", 10)]
    share = len(to_canary) / len(clients) * 100
    assert 7 <= share <= 13, share
    # sticky: the same client gets the same answer every time
    for c in clients[:200]:
        first = goes_to_canary(c, "ada-quillfeather", "ada-quillfeather/v0002", 10)
        assert all(goes_to_canary(c, "ada-quillfeather", "ada-quillfeather/v0002", 10) == first for _ in range(5))


@pytest.mark.parametrize(("percent", "low", "high"), [(0, 0, 0), (1, 0, 2.5), (50, 46, 54), (100, 100, 100)])
def test_share_follows_the_percent(percent: int, low: float, high: float) -> None:
    hits = sum(goes_to_canary(f"c{i}", "bob-marlowe", "bob-marlowe/v0007", percent) for i in range(2000))
    assert low <= hits / 20 <= high


def test_no_canary_no_split_and_a_new_canary_draws_new_clients() -> None:
    assert not goes_to_canary("c1", "ada", None, 10)
    assert not goes_to_canary("c1", "ada", "ada/v0002", None)
    a = {i for i in range(2000) if goes_to_canary(f"c{i}", "ada", "ada/v0002", 10)}
    b = {i for i in range(2000) if goes_to_canary(f"c{i}", "ada", "ada/v0003", 10)}
    assert a != b and len(a & b) < len(a) / 2  # independent samples overlap ~10 %
    assert 0 <= bucket("c1", "ada", "ada/v0002") < 10_000


def test_client_identity() -> None:
    assert client_id_of("key-1", "user-42", "10.0.0.1") == "id:user-42"  # explicit client id wins
    by_key = client_id_of("secret-key-0123456789", None, "10.0.0.1")
    assert by_key.startswith("key:") and "secret" not in by_key  # a digest, never the key
    assert by_key == client_id_of("secret-key-0123456789", None, "10.9.9.9")  # sticky across addresses
    assert client_id_of(None, None, "10.0.0.1") == "addr:10.0.0.1"


def test_one_api_key_is_split_per_request_an_explicit_client_is_sticky() -> None:
    key = client_id_of("ada-key-0123456789", None, "10.0.0.1")
    assert split_key(key, "r-1") == "req:r-1" and split_key("addr:10.0.0.1", "r-1") == "req:r-1"
    assert split_key("id:user-42", "r-1") == split_key("id:user-42", "r-2") == "id:user-42"
    picks = [goes_to_canary(split_key(key, f"r-{i}"), "ada", "ada/v0002", 10) for i in range(2000)]
    assert sum(picks) == 206  # one key, ~10 % of its requests (exact: the hash is fixed)
    sticky = {goes_to_canary(split_key("id:user-42", f"r-{i}"), "ada", "ada/v0002", 10) for i in range(50)}
    assert len(sticky) == 1


def test_injected_faults_fail_exactly_three_in_ten() -> None:
    from twin_core.serving.faults import fails

    assert [i for i in range(20) if fails(i, 0.3)] == [3, 6, 9, 13, 16, 19]
    assert sum(fails(i, 0.05) for i in range(100)) == 5 and not any(fails(i, 0.0) for i in range(10))


def test_pool_routes_production_canary_and_base() -> None:
    from twin_core.serving.pool import AuthorRoute, ModelPool, ServedModel

    base_llm = SimpleNamespace(model_version="base:v")
    settings = SimpleNamespace(
        serve=SimpleNamespace(
            batch_max_size=8, batch_window_ms=5, batching=True, batch_mode="continuous", request_timeout_s=10
        )
    )
    pool = ModelPool(settings, base_llm, registry=object())  # type: ignore[arg-type]
    prod = ServedModel("ada/v0001", "production", None, None, "ada/v0001")  # type: ignore[arg-type]
    canary = ServedModel("ada/v0002", "canary", None, None, "ada/v0002")  # type: ignore[arg-type]
    pool.routes["Ada"] = AuthorRoute("Ada", "ada", "t", prod, canary, 10)
    pool.routes["Bob"] = AuthorRoute("Bob", "bob", "t")  # nothing in the registry: base
    picks = [pool.choose("Ada", f"c{i}").version for i in range(2000)]
    assert 140 <= picks.count("ada/v0002") <= 260 and picks.count("ada/v0001") == 2000 - picks.count("ada/v0002")
    assert pool.choose("Bob", "c1").version == "base:v" and pool.choose(None, "c1").version == "base:v"
    assert [m.version for m in pool.served()] == ["base:v", "ada/v0001", "ada/v0002"]
