"""Every canary check is a statistic: it states its sample sizes and interval, fails only when the whole
interval is out of range, and holds when it is inconclusive or rests on too few values (deploy/analysis.py,
watch.live_quality on the embedded warehouse). Exact counts and seeded intervals: no luck."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twin_core.deploy.analysis import CanaryConfig, Quality, decide, quality_checks, quantile_interval
from twin_core.domain.inference import InferenceLog, LatencyMs, RetrievedRef

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CFG = CanaryConfig(min_requests=20)
STEADY = Quality(10, 10, 1.0, 1.0, (0.75, 0.85) * 5, (0.75, 0.85) * 5, style_interval=(-0.05, 0.05))


def rows(latencies: list[float], version: str = "v") -> list[InferenceLog]:
    return [
        InferenceLog(time=T0 + timedelta(seconds=i), status="ok", model_version=version, latency_ms=LatencyMs(total=ms))
        for i, ms in enumerate(latencies)
    ]


def run(can: list[InferenceLog], prod: list[InferenceLog], q: Quality = STEADY) -> Any:
    return decide(can, prod, q, weight=5, failed_before=0, cfg=CFG)


def test_a_p95_ratio_from_a_few_slow_requests_holds_instead_of_failing() -> None:
    # 3 slow requests in 40: the canary's p95 is 300 ms (ratio 3.0), but its interval reaches down to 100 ms
    d = run(rows([100.0] * 37 + [300.0] * 3), rows([100.0] * 400))
    latency = d.checks[1]
    assert (latency.result, latency.value, d.action) == ("hold", 3.0, "hold")
    assert latency.n == {"canary": 40, "production": 400} and latency.interval == [1.0, None]
    assert latency.detail.endswith("95% CI [1.000, unbounded] inconclusive")
    # a production side too short to bound its p95 (40 < 86 values): a 2x slower canary cannot fail
    short = run(rows([200.0] * 40), rows([100.0] * 40)).checks[1]
    assert (short.result, short.value, short.interval) == ("hold", 2.0, [0.0, None])
    # every canary request 2x slower, against enough production traffic: the whole interval is above 1.5
    slow = run(rows([200.0] * 40), rows([100.0] * 400))
    assert (slow.checks[1].result, slow.checks[1].interval, slow.action) == ("fail", [2.0, None], "fail")
    assert "wholly out of range" in slow.reasons[0] and "n canary 40, production 400" in slow.reasons[0]


def test_the_p95_interval_is_distribution_free() -> None:
    values = [float(v) for v in range(1, 101)]  # 100 values: the p95's 97.5 % interval is order statistics
    assert quantile_interval(values, 0.95, 0.975) == (90.0, 100.0)
    assert quantile_interval(values[:85], 0.95, 0.975)[1] is None  # 85 values cannot bound it from above
    assert quantile_interval([], 0.95, 0.975) is None


def test_a_style_increase_whose_interval_reaches_into_range_holds() -> None:
    wide = Quality(10, 10, 1.6, 1.0, STEADY.canary_grounded, STEADY.production_grounded, style_interval=(0.3, 0.9))
    style = run(rows([100.0] * 40), rows([100.0] * 400), wide).checks[2]
    assert (style.result, style.value, style.interval) == ("hold", 0.6, [0.3, 0.9])
    assert style.n == {"canary": 10, "production": 10} and "inconclusive" in style.detail
    no_interval = Quality(10, 10, 1.6, 1.0, STEADY.canary_grounded, STEADY.production_grounded)
    assert quality_checks(no_interval, CFG)[0].result == "hold"  # an estimate without its uncertainty


def test_groundedness_rests_on_the_answers_that_retrieved_context() -> None:
    # 10 answers a side, but only 2 of the canary's retrieved any context: too few to compare
    few = Quality(10, 10, 1.0, 1.0, (0.1, 0.2), (0.8,) * 10, style_interval=(-0.05, 0.05))
    check = quality_checks(few, CFG)[1]
    assert (check.result, check.value) == ("hold", None)
    assert check.detail == "2/10 answers with retrieved context < 5 a side"
    assert check.n == {"canary": 2, "production": 10}
    # a drop of 0.16 made by two ungrounded answers in ten: the seeded bootstrap reaches down to 0
    two_bad = Quality(10, 10, 1.0, 1.0, (0.8,) * 8 + (0.0, 0.0), (0.8,) * 10, style_interval=(-0.05, 0.05))
    check = quality_checks(two_bad, CFG)[1]
    assert (check.result, check.value, check.interval) == ("hold", 0.16, [0.0, 0.4])
    # every canary answer less grounded: the whole interval is above 0.1
    all_bad = Quality(10, 10, 1.0, 1.0, (0.5,) * 10, (0.8,) * 10, style_interval=(-0.05, 0.05))
    assert quality_checks(all_bad, CFG)[1].result == "fail"


def test_every_check_states_its_sample_and_interval_in_the_recorded_numbers() -> None:
    d = run(rows([100.0] * 40), rows([100.0] * 400))
    assert d.action == "step"
    checks = {c["name"]: c for c in d.numbers()["checks"]}
    assert checks["request-success-rate"]["n"] == {"canary": 40, "production": 400}
    assert d.checks[0].detail == "success rate 1.000 (40/40 ok); n canary 40, production 400; 95% CI [0.912, 1.000]"
    assert checks["latency-p95-ratio"]["n"] == {"canary": 40, "production": 400}
    assert checks["style-distance-increase"]["interval"] == [-0.05, 0.05]
    assert checks["groundedness-drop"]["n"] == {"canary": 10, "production": 10}
    assert all(c["interval"] is not None and c["confidence"] == 0.95 for c in checks.values())
    assert d.numbers()["canary"]["latencies"] == 40


def _ada_posts(settings: Any) -> list[str]:
    """Three posts of Ada Quillfeather in the warehouse (the reference of the canary's style check); their texts."""
    from twin_core.domain import PostDocument
    from twin_core.stores.warehouse import open_warehouse

    wh = open_warehouse(settings)
    user, _ = wh.get_or_create_user("Ada Quillfeather")
    texts = [
        "I think the index is the thing that we should build first, and then we can test it.",
        "We built the cache and it was fast, but the thing is that we had to test it again.",
        "It is the data that matters, and I think we should keep the schema simple and small.",
    ]
    for i, text in enumerate(texts):
        wh.upsert_document(PostDocument(link=f"https://ada.example/{i}", platform="linkedin", author_id=user.id,
                                        author_full_name=user.full_name, content={"Content": text}))  # fmt: skip
    return texts


def test_live_quality_on_the_warehouse_counts_only_answers_with_context(settings: Any) -> None:
    from twin_core.deploy.watch import live_quality

    texts = _ada_posts(settings)

    def answered(version: str, n: int, with_context: int) -> list[InferenceLog]:
        return [
            InferenceLog(status="ok", request_id=f"{version}-{i:02d}", model_version=version, answer=texts[i % 3],
                         retrieved=[RetrievedRef(link=f"https://ada.example/{i % 3}")] if i < with_context else [])
            for i in range(n)
        ]  # fmt: skip

    q = live_quality(settings, "Ada Quillfeather", answered("canary", 10, 2), answered("prod", 10, 10), 20)
    assert (q.canary_answers, len(q.canary_grounded), len(q.production_grounded)) == (10, 2, 10)
    style, grounded = quality_checks(q, CFG)
    assert grounded.result == "hold" and grounded.detail.startswith("2/10 answers with retrieved context")
    # the same answers on both sides: no increase, and its interval is stated around 0
    assert style.value == 0.0 and style.result == "pass" and style.interval[0] <= 0.0 <= style.interval[1]


def test_live_quality_profiles_the_authors_documents_once_per_analysis(settings: Any, monkeypatch: Any) -> None:
    """Both sides' Delta and the interval of the increase rest on one profile of the reference documents
    (it was built three times per analysis), with the same numbers as the separate measures."""
    from twin_core.deploy.watch import live_quality
    from twin_core.evaluation import stylometry

    docs = _ada_posts(settings)
    answers = {"canary": [*docs, "The thing is, we test it first."], "prod": ["So it is, which is fine.", *docs[:2]]}

    def answered(version: str) -> list[InferenceLog]:
        return [InferenceLog(status="ok", request_id=f"{version}-{i}", model_version=version, answer=text)
                for i, text in enumerate(answers[version])]  # fmt: skip

    profiled: list[int] = []
    profile = stylometry._profile
    monkeypatch.setattr(stylometry, "_profile", lambda reference: profiled.append(len(reference)) or profile(reference))
    q = live_quality(settings, "Ada Quillfeather", answered("canary"), answered("prod"), 20)
    assert profiled == [3] and q.note == ""
    monkeypatch.undo()
    can, prod = answers["canary"], answers["prod"]
    assert q.canary_style == stylometry.style_distance(can, docs)
    assert q.production_style == stylometry.style_distance(prod, docs)
    assert q.style_interval == stylometry.style_difference_interval(can, prod, docs)
