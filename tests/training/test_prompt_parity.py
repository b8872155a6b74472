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


def test_packed_batch_keeps_examples_apart_and_loss_on_answers(tsettings) -> None:
    """Packed, padding-free SFT (the cpu profiles): whole examples in one sequence, position ids restart per
    example, labels on the answers only, and no token attends across examples (flat logits = a separate
    forward of the example)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from twin_core.llm import rows
    from twin_core.llm.base_model import resolve_base
    from twin_core.training import peft_model as models
    from twin_core.training.profiles import load_profile

    profile = load_profile(tsettings, "tiny-test")
    model, tokenizer = models.load_for_training(tsettings, profile, resolve_base(tsettings, profile.base_model))
    answers = ["Because reruns are free.", "Short."]
    examples = [
        rows.sft_example({"instruction": "Why are idempotent jobs worth it?", "answer": answers[0]}, "Ada"),
        rows.sft_example({"instruction": "Say it shortly.", "answer": answers[1]}, "Ada"),
    ]
    args = SFTConfig(output_dir=str(tsettings.home / "pf"), max_length=1024, completion_only_loss=True,
                     packing=True, packing_strategy="bfd", per_device_train_batch_size=1, use_cpu=True,
                     report_to="none")  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    ids, pos, labels = (batch[k][0].tolist() for k in ("input_ids", "position_ids", "labels"))
    starts = [i for i, p in enumerate(pos) if p == 0]
    assert len(starts) == 2 and tokenizer.pad_token_id not in ids  # both examples whole, no pad token
    segments = [(a, b) for a, b in zip(starts, [*starts[1:], len(ids)], strict=True)]
    assert all(pos[a:b] == list(range(b - a)) for a, b in segments)
    answered = sorted(tokenizer.decode([t for t, y in zip(ids[a:b], labels[a:b], strict=True) if y != -100])
                      for a, b in segments)  # fmt: skip
    assert answered == sorted(a + "<|im_end|>\n" for a in answers)  # loss on the answers (and their end) only
    a, b = segments[1]
    with torch.inference_mode():
        flat = trainer.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        alone = trainer.model(input_ids=torch.tensor([ids[a:b]])).logits[0]
    assert torch.allclose(flat[a:b], alone, atol=1e-4)  # the second example never sees the first
