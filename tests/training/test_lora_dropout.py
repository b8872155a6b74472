"""LoRA dropout on CPU: four keep decisions per 64-bit draw, the same p to 1/65,536, unbiased."""

from __future__ import annotations

import pytest

from twin_core.training.lora_dropout import LANES, keep_mask, lane_threshold, use_lane_dropout


def test_threshold_drops_round_p_times_65536_lane_values() -> None:
    assert lane_threshold(0.05) == -32768 + 3277  # 3,277 of 65,536 lane values dropped: p = 0.0500030...
    assert lane_threshold(0.0) == -32768  # nothing below the smallest lane
    assert lane_threshold(0.5) == 0


def test_keep_mask_keeps_one_minus_p_and_is_seeded() -> None:
    import torch

    torch.manual_seed(0)
    mask = keep_mask((1000, 4001), 0.05)  # an odd size: the last draw's spare lanes are unused
    assert mask.shape == (1000, 4001) and mask.dtype == torch.bool
    kept = mask.float().mean().item()
    expected = 1 - 3277 / LANES
    assert abs(kept - expected) < 5 * (expected * (1 - expected) / mask.numel()) ** 0.5  # within 5 sigma (seeded)
    torch.manual_seed(0)
    assert torch.equal(keep_mask((1000, 4001), 0.05), mask)  # the trainer's seed makes a run reproducible
    rows = mask.float().mean(dim=1)
    assert rows.min().item() > 0.93 and rows.max().item() < 0.97  # no lane pattern: every row near 0.95


def _tiny_peft(dropout: float):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["q_proj", "v_proj", "down_proj"],
                      task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(LlamaForCausalLM(cfg), lora)


def test_every_lora_dropout_is_swapped_with_the_same_p() -> None:
    import torch

    model = _tiny_peft(0.05)
    assert use_lane_dropout(model) == 2 * 3  # two layers x three target modules
    drops = [m for m in model.modules() if type(m).__name__ == "LaneDropout"]
    assert len(drops) == 6 and {d.p for d in drops} == {0.05}
    assert not [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    assert use_lane_dropout(model) == 0  # idempotent
    assert use_lane_dropout(_tiny_peft(0.0)) == 0  # dropout 0 stays peft's identity


@pytest.mark.parametrize("training", [True, False])
def test_lane_dropout_is_inverted_dropout(training: bool) -> None:
    import torch

    model = _tiny_peft(0.05)
    use_lane_dropout(model)
    drop = next(m for m in model.modules() if type(m).__name__ == "LaneDropout")
    drop.train(training)
    x = torch.ones(200, 500)
    y = drop(x)
    if not training:
        assert y is x
        return
    scale = LANES / (LANES - 3277)
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and values[1] == pytest.approx(scale) and len(values) == 2
    assert abs(y.mean().item() - 1.0) < 0.01  # unbiased: the scale is the exact inverse of the keep probability
    x.requires_grad_(True)
    torch.manual_seed(3)
    out = drop(x)
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # gradient flows through the kept elements, scaled the same way


@pytest.mark.slow
def test_cpu_profile_trainers_get_lane_dropout(tsettings) -> None:
    """build_trainer on a CPU profile: SFT's LoRA dropouts are LaneDropout; DPO keeps none (TRL's
    ``disable_dropout``, so the policy and its reference see the same network)."""
    import torch
    from datasets import Dataset

    from twin_core.llm import rows
    from twin_core.llm.base_model import resolve_base
    from twin_core.training import peft_model as models
    from twin_core.training.profiles import load_profile
    from twin_core.training.trainers import build_trainer, trainer_args

    tiny = load_profile(tsettings, "tiny-test")
    profile = tiny.model_copy(update={"lora": tiny.lora.model_copy(update={"dropout": 0.05})})
    row = {"instruction": "Why are idempotent jobs worth it?", "answer": "Because reruns are free."}
    data = {"sft": [rows.sft_example(row, "Ada")] * 2,
            "dpo": [{"prompt": "Why?", "chosen": "Because reruns are free.", "rejected": "No idea."}] * 2}  # fmt: skip
    for kind in ("sft", "dpo"):
        model, tokenizer = models.load_for_training(tsettings, profile, resolve_base(tsettings, profile.base_model))
        args = trainer_args(profile, kind, tsettings.home / kind, 1, 1, False)
        trainer = build_trainer(kind, profile, args, model, tokenizer, (Dataset.from_list(data[kind]), None), [])
        lanes = [m for m in trainer.model.modules() if type(m).__name__ == "LaneDropout"]
        active = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
        layers = model.config.num_hidden_layers
        assert (len(lanes), len(active)) == ((2 * layers, 0) if kind == "sft" else (0, 0)), kind  # q_proj, v_proj
