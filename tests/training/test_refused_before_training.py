"""Bad input to `twin train` that used to fail deep inside the Trainer (exit 1, a traceback), or to "train" on
nothing and register the base model as a candidate: each is now refused with its option or setting named and
what to do, before the model loads where it can be, and nothing is registered or checkpointed."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml


def _registered(settings: Any) -> list:
    from twin_core.stores.registry import open_registry

    return open_registry(settings).list()


def _config_error(twin: Any, env: dict[str, str], settings: Any, dataset: str, profile: Path) -> str:
    """`twin train sft` with ``profile``: exit 2 (config), nothing registered; its error message."""
    run = twin("train", "sft", "--dataset", dataset, "--profile", str(profile), env=env)
    assert (run.returncode, run.result["kind"]) == (2, "config"), run.stderr[-2000:]
    assert _registered(settings) == []
    return run.result["error"]


def _variant(tmp_path: Path, source: Path, name: str, **changes: Any) -> Path:
    """``source`` (a profile YAML) with top-level ``changes``; ``lora``/``sft``/``dpo`` dicts are merged."""
    profile = yaml.safe_load(source.read_text())
    for key, value in changes.items():
        profile[key] = {**profile[key], **value} if isinstance(value, dict) else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _prompt_tokens(base: Path, rows: list[dict]) -> list[int]:
    """The served prompt of each row tokenized as TRL does (the chat template, generation prompt included)."""
    from transformers import AutoTokenizer

    from twin_core.llm.rows import sft_example

    tokenizer = AutoTokenizer.from_pretrained(base)
    return [
        len(tokenizer.apply_chat_template(sft_example(row, "Ada Quillfeather")["prompt"], add_generation_prompt=True,
                                          tokenize=True)["input_ids"])
        for row in rows
    ]  # fmt: skip


@pytest.mark.parametrize("packing", [False, True], ids=["unpacked", "packed"])
def test_a_max_length_that_cuts_every_answer_off_is_refused_before_the_model_loads(
    twin, train_env, tsettings, instruct_version: str, tiny_random: Path, tmp_path: Path, packing: bool
) -> None:
    """Unpacked, TRL dropped every row and the Trainer failed ("num_samples=0", exit 1); packed, every row kept
    no label and the run registered a candidate trained on nothing (loss 0.0, exit 0)."""
    from training_fixtures import sample_rows

    profile = _variant(tmp_path, tiny_random, "short", max_length=20, packing=packing)
    run = twin("train", "sft", "--dataset", instruct_version, "--profile", str(profile), env=train_env)
    counts = _prompt_tokens(Path(yaml.safe_load(tiny_random.read_text())["base_model"]), sample_rows()[0])
    assert min(counts) >= 20 and len(counts) == 12
    assert (run.returncode, run.result["kind"]) == (3, "input"), run.stderr[-2000:]
    assert run.result["error"] == (
        f"--profile tiny-random: max_length 20 leaves no answer token in any of the 12 training rows of "
        f"{instruct_version}: their prompts (system message and question) are {min(counts)}-{max(counts)} tokens, "
        f"so nothing would be learned; raise max_length to more than {max(counts)} in {profile}"
    )
    assert _registered(tsettings) == []
    assert not list(Path(tsettings.artifacts_location).glob("training/*/checkpoints/*/metadata.json"))


def test_rows_cut_off_in_part_are_named_in_a_warning(tsettings, caplog: pytest.LogCaptureFixture) -> None:
    """Some rows' prompts fill max_length (a long question: a long retrieved context is cut to fit, see
    below): training goes on, and says how many rows train nothing and what to change."""
    from transformers import AutoTokenizer

    from twin_core.llm.base_model import resolve_base
    from twin_core.training.lengths import check_answers_fit, prompt_tokens

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(tsettings, "packaged"))
    rows = [{"instruction": q, "answer": "Because.", "context": "short"} for q in ("Why?", "Why " * 400 + "?")]
    plan = _plan(rows, 384)
    short, long = prompt_tokens(tokenizer, plan)
    assert short < 384 <= long
    with caplog.at_level(logging.WARNING, logger="twin_core.training.lengths"):
        check_answers_fit(tokenizer, plan)
    assert [r.getMessage() for r in caplog.records] == [
        "--profile cpu-tiny: max_length 384 cuts the whole answer off 1 of the 2 training rows of "
        "instruct/ada-quillfeather/v0001 (prompts of 384 tokens or more): they train nothing; raise max_length to "
        f"more than {long} in configs/training/cpu-tiny.yaml, or rebuild the dataset with less retrieved context "
        "per row (TWIN_DATASETS_CONTEXT_TOKENS, e.g. 64, then `twin datasets build`)"
    ]


def test_a_learning_rate_schedule_the_trainer_cannot_run_is_a_config_error(
    twin, train_env, tsettings, instruct_version: str, tmp_path: Path
) -> None:
    """Was a ValueError from transformers after the model had loaded (exit 1)."""
    tiny = Path(__file__).parent / "profiles" / "tiny-test.yaml"
    profile = _variant(tmp_path, tiny, "sched", sft={"lr_scheduler": "cosine_annealing"})
    assert _config_error(twin, train_env, tsettings, instruct_version, profile) == (
        f"training profile {profile}: 1 invalid setting: sft.lr_scheduler: Input should be 'linear', 'cosine', "
        "'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup' or 'inverse_sqrt' "
        "(got 'cosine_annealing')"
    )
    from transformers.trainer_utils import SchedulerType

    from twin_core.training.profiles import LrScheduler

    assert set(LrScheduler.__args__) <= {s.value for s in SchedulerType}  # names the Trainer knows


def test_lora_target_modules_that_match_nothing_name_the_models_modules(
    twin, train_env, tsettings, instruct_version: str, tiny_random: Path, tmp_path: Path
) -> None:
    """Was peft's NoMatchingPeftModuleError with its traceback (exit 1)."""
    profile = _variant(tmp_path, tiny_random, "typo", lora={"target_modules": ["q_proj_typo"]})
    assert _config_error(twin, train_env, tsettings, instruct_version, profile) == (
        f"training profile {profile}: lora.target_modules ['q_proj_typo'] match no module of the base model "
        "(llama); its linear modules are down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj "
        "(or write all-linear)"
    )


# GGUF bases: a local .gguf file (or a folder holding one) is de-quantized once for training, what cannot be
# converted is refused before anything loads: test_gguf_base.py


def test_unknown_dataset_and_from_versions_name_their_option_and_the_versions_there_are(
    twin, train_env, tsettings, instruct_version: str, preference_version: str
) -> None:
    run = twin("train", "sft", "--dataset", "instruct/ada-quillfeather/v0042", "--profile", "tiny-test", env=train_env)
    assert (run.returncode, run.result["error"]) == (
        3,
        "--dataset 'instruct/ada-quillfeather/v0042': unknown dataset version instruct/ada-quillfeather/v0042 "
        "(instruct versions of ada-quillfeather: v0001; see `twin datasets list`)",
    )
    run = twin("train", "sft", "--dataset", "instruct/ada-quilfeather/v0001", "--profile", "tiny-test", env=train_env)
    assert (run.returncode, run.result["error"]) == (
        3,
        "--dataset 'instruct/ada-quilfeather/v0001': unknown dataset version instruct/ada-quilfeather/v0001 "
        "(no instruct dataset of ada-quilfeather; authors with one: ada-quillfeather; see `twin datasets list`)",
    )
    args = ("train", "dpo", "--dataset", preference_version, "--profile", "tiny-test", "--from")
    run = twin(*args, "ada-quillfeather/v0007", env=train_env)
    assert (run.returncode, run.result["error"]) == (
        3,
        "--from 'ada-quillfeather/v0007': unknown model version ada-quillfeather/v0007 "
        "(no model version of ada-quillfeather yet; see `twin registry list`)",
    )
    assert _registered(tsettings) == []


def _plan(rows: list[dict], max_length: int) -> SimpleNamespace:
    profile = SimpleNamespace(name="cpu-tiny", max_length=max_length, source="configs/training/cpu-tiny.yaml")
    data = SimpleNamespace(train=rows, author="Ada Quillfeather", version_id="instruct/ada-quillfeather/v0001")
    return SimpleNamespace(kind="sft", profile=profile, data=data)


def test_a_profile_too_short_for_the_served_context_trains_on_a_cut_context(
    tsettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Datasets attach as much context as serving sends (1024 tokens): cpu-tiny's max_length 384 cut every
    answer off, and a dataset built with the defaults could not train on a CPU profile. Now the context is cut
    to fit (its first chunk truncated), the answers are learned, and the log says so."""
    from transformers import AutoTokenizer

    from twin_core.llm.base_model import resolve_base
    from twin_core.llm.rows import sft_example
    from twin_core.training.lengths import check_answers_fit, examples, prompt_tokens

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(tsettings, "packaged"))
    rows = [{"instruction": "Why?", "answer": "Because.", "context": ["word " * 900, "other " * 100]}]
    short, served = _plan(rows, 384), _plan(rows, 2048)
    (cut,) = examples(short, tokenizer, rows)
    user = cut["prompt"][1]["content"]
    block = user.split("<context>\n", 1)[1].split("\n</context>", 1)[0]
    assert len(tokenizer(block, add_special_tokens=False)["input_ids"]) <= 128
    assert block.count("<source ") == 1 and "word" in block and "other" not in block
    assert prompt_tokens(tokenizer, short)[0] < 384
    with caplog.at_level(logging.INFO, logger="twin_core.training.lengths"):
        check_answers_fit(tokenizer, short)
    assert [r.getMessage() for r in caplog.records] == [
        "--profile cpu-tiny: max_length 384: training prompts carry at most 128 tokens of retrieved context "
        "(serving sends up to 1024), so the answers fit"
    ]
    # a profile long enough for serving's context and an answer trains on the served prompt itself
    assert examples(served, tokenizer, rows) == [sft_example(rows[0], "Ada Quillfeather")]


def test_the_summary_line_of_a_run_taken_as_is_keeps_its_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run resumed is taken from its checkpoint: no throughput, the rest of the line as always."""
    from twin_core.cli.train import _report

    metrics = {"first_loss": 3.5, "last_loss": 1.7, "global_step": 6, "perplexity_base": 48.9,
               "perplexity_trained": 47.2, "tokens_per_s": None}  # fmt: skip
    _report({"model": "ada-quillfeather/v0001", "stage": "candidate", "metrics": metrics})
    _report({"model": "ada-quillfeather/v0001", "stage": "candidate", "metrics": {**metrics, "tokens_per_s": 152.2}})
    head = (
        "ada-quillfeather/v0001 (candidate): loss 3.5 -> 1.7 in 6 steps; held-out perplexity base 48.9 -> trained 47.2"
    )
    assert capsys.readouterr().err.splitlines() == [
        f"{head}; taken from its last checkpoint as is",
        f"{head}; 152.2 tokens/s",
    ]
