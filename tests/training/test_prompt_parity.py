"""One prompt: the text training learns is the text serving sends, and the loss is on the answer only."""

from __future__ import annotations

import pytest

from twin_core.llm.prompt import build_messages, render_prompt

pytestmark = pytest.mark.slow


def test_trained_text_is_served_prompt_plus_answer(tsettings) -> None:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from twin_core.llm import rows as data
    from twin_core.llm.base_model import resolve_base
    from twin_core.training import peft_model as models
    from twin_core.training.profiles import load_profile

    profile = load_profile(tsettings, "tiny-test")
    location = resolve_base(tsettings, profile.base_model)
    model, tokenizer = models.load_for_training(tsettings, profile, location)
    row = {"instruction": "Why are idempotent jobs worth it?", "answer": "Because reruns are free.", "id": "x"}
    row_ctx = {
        **row,
        "context": "Idempotency means running twice equals once.",
        "link": "https://a/b",
        "category": "articles",
    }

    for r in (row, row_ctx):
        ex = data.sft_example(r, "Ada Quillfeather")
        # what serving sends: build_messages without the answer, through the chat template
        contexts = data.row_contexts(r)
        served = render_prompt(
            tokenizer, build_messages(r["instruction"], contexts, author="Ada Quillfeather").messages
        )
        assert ex["prompt"] == build_messages(r["instruction"], contexts, author="Ada Quillfeather").messages
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(output_dir=str(tsettings.home / "t"), max_length=1024, completion_only_loss=True,
                           use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none"),
            train_dataset=Dataset.from_list([ex]),
            processing_class=tokenizer,
            peft_config=models.lora_config(profile),
        )  # fmt: skip
        item = trainer.train_dataset[0]
        text = tokenizer.decode(item["input_ids"])
        assert text == served + r["answer"] + "<|im_end|>\n"
        labelled = [t for t, label in zip(item["input_ids"], item["labels"], strict=True) if label != -100]
        assert tokenizer.decode(labelled) == r["answer"] + "<|im_end|>\n"  # loss on the answer (and its end) only
        prompt_text, answer_text = data.prompt_and_answer_text(tokenizer, ex)
        assert (prompt_text, answer_text) == (served, r["answer"] + "<|im_end|>\n")
        model = trainer.model.unload()  # the next round starts from the plain model again


def test_perplexity(tsettings) -> None:
    from twin_core.llm.base_model import resolve_base
    from twin_core.llm.perplexity import perplexity
    from twin_core.training import peft_model as models
    from twin_core.training.profiles import load_profile

    profile = load_profile(tsettings, "tiny-test")
    model, tokenizer = models.load_for_training(tsettings, profile, resolve_base(tsettings, profile.base_model))
    fluent = perplexity(model, tokenizer, ["The cat sat on the mat and looked out of the window."])
    noise = perplexity(model, tokenizer, ["mat window the of cat out sat looked on and the the."])
    assert 1 < fluent < noise
    prompt = "Question: what colour is the sky on a clear day?\nAnswer:"
    good = perplexity(model, tokenizer, [(prompt, " The sky is blue.")])
    bad = perplexity(model, tokenizer, [(prompt, " Potato seventeen purple.")])
    assert good < bad
    assert perplexity(model, tokenizer, []) is None
