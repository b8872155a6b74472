"""Packed SFT attends per example (one causal SDPA per example) and gives what the block-diagonal mask gives."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def _packed(tsettings, packing: bool):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from twin_core.llm import rows
    from twin_core.llm.base_model import resolve_base
    from twin_core.training import peft_model as models
    from twin_core.training.profiles import load_profile

    profile = load_profile(tsettings, "tiny-test").model_copy(update={"packing": packing})
    model, tokenizer = models.load_for_training(tsettings, profile, resolve_base(tsettings, profile.base_model))
    examples = [
        rows.sft_example({"instruction": q, "answer": a}, "Ada")
        for q, a in (("Why are idempotent jobs worth it?", "Because reruns are free."), ("Say it shortly.", "Short."),
                     ("And the third?", "Retries with backoff, and a log line that says why."))
    ]  # fmt: skip
    args = SFTConfig(output_dir=str(tsettings.home / f"pf{packing}"), max_length=1024, completion_only_loss=True,
                     packing=True, packing_strategy="bfd", per_device_train_batch_size=1, use_cpu=True,
                     report_to="none")  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer,
        peft_config=models.lora_config(profile),
    )  # fmt: skip
    return trainer, next(iter(trainer.get_train_dataloader()))


def test_packed_profile_attends_per_example_with_the_masks_values(tsettings, monkeypatch) -> None:
    import torch
    import torch.nn.functional as F

    from twin_core.training.varlen_attention import NAME

    trainer, batch = _packed(tsettings, packing=True)
    model = trainer.model
    assert model.config._attn_implementation == NAME
    bounds = batch["cu_seq_lens_q"].tolist()
    assert len(bounds) == 4 and bounds[0] == 0 and bounds[-1] == batch["input_ids"].shape[1]

    calls: list[tuple[int, bool]] = []
    sdpa = F.scaled_dot_product_attention

    def counting(q, k, v, attn_mask=None, **kw):
        calls.append((q.shape[2], attn_mask is None and kw.get("is_causal", False)))
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    layers = model.config.num_hidden_layers
    # one causal SDPA per example and layer, each of the example's own length, no mask
    assert calls == [(b - a, True) for a, b in zip(bounds, bounds[1:], strict=False)] * layers
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    calls.clear()
    model.zero_grad()
    masked = {k: v for k, v in batch.items() if not k.startswith(("cu_seq_lens", "max_length"))}
    reference = trainer.compute_loss(model, masked)  # no bounds: SDPA over the row with the block-diagonal mask
    reference.backward()
    assert calls == [(bounds[-1], False)] * layers
    assert torch.allclose(loss, reference, atol=1e-5)
    assert grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    assert len(grads) == 2 * 2 * layers  # LoRA A and B of q_proj and v_proj in every layer
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(grads[name], p.grad, rtol=1e-3, atol=1e-6), name


def test_unpacked_profile_keeps_sdpa(tsettings) -> None:
    trainer, _ = _packed(tsettings, packing=False)
    assert trainer.model.config._attn_implementation == "sdpa"
