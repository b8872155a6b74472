"""Dataset build benchmark: extracts/s for both strategies and the build time of a Handbook-sized corpus.
(Named dataset_build.py, not datasets.py: a script's folder is first on sys.path, and a benchmarks/datasets.py
shadows Hugging Face `datasets` for every other benchmark that imports TRL.)

    .venv/bin/python benchmarks/dataset_build.py [--articles 76] [--llm-extracts 40] [--rejected 32]
        [--one-at-a-time 8] [--rounds 4]

A Handbook-sized corpus (76 articles, as in the LLM Engineer's Handbook's backup) is written in the
Handbook backup format from the sample articles (paragraphs drawn with a fixed seed and reworded, ~6,000
characters each), imported with `twin warehouse import`'s code, cleaned into a fresh embedded feature store, then:
(a) the extractive build of the whole corpus (no model: goal ≤ 60 s) and an unchanged re-run;
(b) the LLM strategy against an OpenAI-compatible endpoint on 127.0.0.1 that answers at once, i.e.
the pipeline's own cost per extract (a real LLM adds its generation time), first run and cached re-run;
(c) ``--rejected N`` rejected answers of the sample author with the packaged local model, on the same
requests (served prompt with the rows' retrieved context, length-matched budgets) in one run: one at a
time (``chat``) and the build's path now (``CachedLLM.rejected``: the continuous engine, 16 rows) in
``--rounds`` alternating rounds, then batches of 8 in row order (the previous build) and the cached re-run.
Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TWIN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.openai_stub import ChatHandler, serve  # noqa: E402

from twin_core.demo import sample_dir  # noqa: E402

AUTHOR = "Ada Quillfeather"


def handbook_corpus(dest: Path, articles: int, seed: int = 0) -> None:
    sample = json.loads((sample_dir() / "ArticleDocument.json").read_text())
    users = json.loads((sample_dir() / "UserDocument.json").read_text())
    paragraphs = [p for a in sample for p in a["content"]["Content"].split("\n\n") if len(p) > 80]
    rng = random.Random(seed)
    docs = []
    for i in range(articles):
        body = [f"Note {i}: this article revisits topic {i} from a new angle."]
        body += [_reword(p, rng) for p in rng.sample(paragraphs, 14)]
        docs.append(
            {
                "_id": f"bench-{i}",
                "content": {"Title": f"Benchmark article {i}", "Subtitle": "", "Content": "\n\n".join(body)},
                "platform": "blog",
                "author_id": users[0]["_id"],
                "author_full_name": AUTHOR,
                "link": f"https://blog.example.org/bench/{i}",
            }
        )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "UserDocument.json").write_text(json.dumps(users))
    (dest / "ArticleDocument.json").write_text(json.dumps(docs))


def _reword(paragraph: str, rng: random.Random) -> str:
    """The paragraph with each sentence's words shuffled: the same English words and length, but text
    of its own (a corpus of copies would be mostly removed as near duplicates)."""
    sentences = []
    for sentence in paragraph.split(". "):
        words = sentence.split()
        rng.shuffle(words)
        sentences.append(" ".join(words))
    return ". ".join(sentences)


class _Instant(ChatHandler):
    def reply(self, body: dict[str, Any]) -> str:
        passage = body["messages"][-1]["content"].split("Passage:\n", 1)[-1]
        pairs = [{"instruction": f"Explain this passage ({len(passage)} characters).", "answer": passage}]
        return json.dumps({"pairs": pairs})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=76)
    ap.add_argument("--llm-extracts", type=int, default=40)
    ap.add_argument("--rejected", type=int, default=32, help="rejected answers to time (0 = skip)")
    ap.add_argument("--one-at-a-time", type=int, default=8, help="of those, how many to time one by one")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the local model (0 = default)")
    ap.add_argument("--batch-size", type=int, default=0, help="rows the build path decodes together (0 = the build's)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of (the next --one-at-a-time answers one by one, then the build path over all): "
        "with 4 rounds of 8 every one of 32 answers is timed alone, between the build path's 4 runs",
    )
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="twin-bench-datasets-"))
    os.environ["TWIN_HOME"] = str(home)
    from support.datasets import write_cleaned_docs

    from twin_core.datasets.build import BuildOptions, build_author
    from twin_core.datasets.extracts import cut
    from twin_core.datasets.rejected_answers import GenerationModel
    from twin_core.domain.documents import Category
    from twin_core.settings import get_settings, updated
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import import_paths

    try:
        handbook_corpus(home / "backup", args.articles)
        settings = get_settings()
        wh = open_warehouse(settings)
        import_paths(wh, [home / "backup"])
        write_cleaned_docs(settings, [d for c in Category for d in wh.iter_documents(c)])

        extractive = BuildOptions(strategy="extractive", seed=1, max_rejected=0)
        t0 = time.perf_counter()
        built = build_author(settings, AUTHOR, extractive)
        extractive_s = time.perf_counter() - t0
        from twin_core.datasets.build import read_cleaned

        n_extracts = sum(len(cut(d)) for d in read_cleaned(settings, AUTHOR))
        t0 = time.perf_counter()
        again = build_author(settings, AUTHOR, extractive)
        rerun_s = time.perf_counter() - t0

        with serve(_Instant) as url:
            llm_settings = updated(settings, llm_backend="openai", llm_base_url=url)
            opts = BuildOptions(strategy="llm", seed=1, max_extracts=args.llm_extracts, max_rejected=0)
            t0 = time.perf_counter()
            build_author(llm_settings, AUTHOR, opts, open_model=GenerationModel(llm_settings, AUTHOR))
            llm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            cached = build_author(
                updated(llm_settings, datasets_near_duplicate_jaccard=0.85),
                AUTHOR,
                opts,
                open_model=GenerationModel(llm_settings, AUTHOR),
            )
            llm_cached_s = time.perf_counter() - t0
        result = {
            "articles": args.articles,
            "extracts": n_extracts,
            "rows": built.stats["instruct"]["rows"],
            "extractive_build_s": round(extractive_s, 1),
            "extractive_extracts_per_s": round(n_extracts / extractive_s, 1),
            "extractive_goal_s": 60,
            "unchanged_rerun_s": round(rerun_s, 1),
            "rerun_created": again.created,
            "llm_extracts": args.llm_extracts,
            "llm_build_s": round(llm_s, 1),
            "llm_extracts_per_s": round(args.llm_extracts / llm_s, 2),
            "llm_cached_build_s": round(llm_cached_s, 1),
            "llm_cached_calls": cached.stats["llm_calls"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        if args.rejected:
            result["rejected"] = rejected_answers(
                home / "rejected", args.rejected, args.one_at_a_time, args.threads, args.batch_size, args.rounds
            )
        print(json.dumps(result))
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def _requests(settings: Any, n: int, llm: Any) -> list[Any]:
    """The build's own rejected-answer requests for the sample author (rows with their contexts)."""
    from support.datasets import HashEmbedder

    from twin_core.datasets import pairs
    from twin_core.datasets.build import BuildOptions, build_author
    from twin_core.datasets.generate import RejectedRequest
    from twin_core.datasets.versions import load_dataset_version

    built = build_author(
        settings, AUTHOR, BuildOptions(max_rejected=0), embedder=HashEmbedder(settings.embedding_model_id)
    )
    v = load_dataset_version(settings, built.versions["instruct"])
    rows = v.rows("train") + v.rows("test")
    candidates = pairs.pair_candidates(rows, n, settings.datasets.rejected_max_new_tokens, llm)
    return [
        RejectedRequest(r["instruction"], tuple(r["context"]), tuple(r["context_links"]), llm.count_tokens(chosen))
        for r, chosen in candidates
    ]


def rejected_answers(
    home: Path, n: int, one_by_one: int, threads: int, batch_size: int = 0, rounds: int = 1
) -> dict[str, Any]:
    """Seconds for ``n`` rejected answers. Each of ``rounds`` rounds times the next ``one_by_one`` answers
    one at a time (``chat``), then the build's path over all ``n`` (a fresh cache each round), so both see
    the same host conditions; the answers timed one at a time are projected to all ``n``. Then, once,
    batches of 8 in row order (the previous build) and the build path's cached re-run."""
    from twin_core.datasets.generate import CachedLLM
    from twin_core.settings import load_settings
    from twin_core.stores.artifacts import open_artifact_store

    llm, requests = _rejected_setup(home, n, threads)
    messages = [r.messages(AUTHOR, llm) for r in requests]
    llm.chat(messages[0], max_new_tokens=2, temperature=0.0)  # warm-up, so no path pays the first call
    batch = {"batch_size": batch_size} if batch_size else {}
    steal0 = _steal_s()
    one: dict[int, str] = {}
    one_t, now_t, same = [0.0, 0.0], [0.0, 0.0], 0
    per_round = []
    for r in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        picked = [i % n for i in range(r * one_by_one, (r + 1) * one_by_one)]
        for i in picked:
            one[i] = llm.chat(messages[i], max_new_tokens=requests[i].max_new_tokens, temperature=0.0).text
        round_one = [time.perf_counter() - t0, time.process_time() - c0]
        gen = CachedLLM(llm, open_artifact_store(load_settings(home=home / f"round-{r}")))
        t0, c0 = time.perf_counter(), time.process_time()
        now = gen.rejected(requests, AUTHOR, **batch)
        round_now = [time.perf_counter() - t0, time.process_time() - c0]
        same += sum(now[i] == one[i] for i in picked)
        per_round.append(round(round_one[0] * n / one_by_one / round_now[0], 2))
        one_t = [x + y for x, y in zip(one_t, round_one, strict=True)]
        now_t = [x + y for x, y in zip(now_t, round_now, strict=True)]
    steal = _steal_s() - steal0 if steal0 is not None else None
    one_s, one_cpu_s = (x * n / (rounds * one_by_one) for x in one_t)  # projected to all n answers
    now_s, now_cpu_s = (x / rounds for x in now_t)  # the build path's mean over the rounds
    batch8_s = _batches_of_8(llm, messages, requests)
    t0 = time.perf_counter()
    cached = CachedLLM(llm, open_artifact_store(load_settings(home=home / "round-0")))
    cached.rejected(requests, AUTHOR, **batch)
    cached_s = time.perf_counter() - t0
    return {
        "answers": len(requests),
        "max_new_tokens_mean": round(sum(r.max_new_tokens for r in requests) / len(requests), 1),
        "prompt_chars_mean": round(sum(r.size for r in requests) / len(requests)),
        "rounds": rounds,
        "one_at_a_time_timed": rounds * one_by_one,
        "one_at_a_time_projected_s": round(one_s, 1),
        "batch8_in_order_s": round(batch8_s, 1),
        "build_path_s": round(now_s, 1),
        "cached_rerun_s": round(cached_s, 2),
        "speedup_vs_one_at_a_time": round(one_s / now_s, 2),
        "speedup_per_round": per_round,
        # CPU seconds of this process, all its threads (OpenMP's spin-waits included)
        "one_at_a_time_projected_cpu_s": round(one_cpu_s, 1),
        "build_path_cpu_s": round(now_cpu_s, 1),
        "cpu_speedup_vs_one_at_a_time": round(one_cpu_s / now_cpu_s, 2),
        "host_steal_s": round(steal, 1) if steal is not None else None,
        "speedup_vs_batch8_in_order": round(batch8_s / now_s, 2),
        "same_greedy_text_as_one_at_a_time": f"{same}/{rounds * one_by_one}",
        "model_calls": gen.calls,
        "cached_rerun_calls": cached.calls,
    }


def _rejected_setup(home: Path, n: int, threads: int) -> tuple[Any, list[Any]]:
    """The packaged local model and the sample author's ``n`` rejected-answer requests."""
    from support.datasets import HashEmbedder, write_cleaned_docs

    from twin_core.domain.documents import Category
    from twin_core.llm import open_llm
    from twin_core.settings import load_settings
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import import_paths

    settings = load_settings(home=home, llm_threads=threads)
    wh = open_warehouse(settings)
    import_paths(wh, [sample_dir()])
    write_cleaned_docs(
        settings, [d for c in Category for d in wh.iter_documents(c)], HashEmbedder(settings.embedding_model_id)
    )
    llm = open_llm(settings)
    return llm, _requests(settings, n, llm)


def _batches_of_8(llm: Any, messages: list[Any], requests: list[Any]) -> float:
    """Seconds for the answers in batches of 8 in row order (``generate_batch``: the previous build)."""
    from twin_core.llm.local import GenRequest

    t0 = time.perf_counter()
    for start in range(0, len(requests), 8):
        chunk = zip(messages[start : start + 8], requests[start : start + 8], strict=True)
        llm.generate_batch([GenRequest(m, r.max_new_tokens) for m, r in chunk])
    return time.perf_counter() - t0


def _steal_s() -> float | None:
    """Seconds of CPU the hypervisor gave other guests so far (all cores; /proc/stat), None off Linux:
    wall times taken while it grows are slower for a reason outside this process."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


if __name__ == "__main__":
    main()
