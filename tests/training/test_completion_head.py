"""CPU training projects the LM head over the labelled positions once and gives what TRL's tiled head gives."""

from __future__ import annotations

import math

import pytest


def test_completion_log_probs_worked_by_hand() -> None:
    import torch

    from twin_core.training.completion_head import completion_log_probs

    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]], requires_grad=True)
    out = completion_log_probs(logits, torch.tensor([1, 1]))
    # p = (1/4, 3/4) and (1/2, 1/2)
    assert torch.allclose(out["log_probs"], torch.tensor([math.log(0.75), math.log(0.5)]))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert torch.allclose(out["entropy"], torch.tensor([h, math.log(2.0)]))
    assert torch.allclose(out["mean_logits"], torch.tensor([math.log(3.0) / 2, 1.0]))
    assert out["is_top1"].tolist() == [True, False]  # a tie counts for the first maximum only, as in TRL
    assert not out["entropy"].requires_grad and not out["is_top1"].requires_grad
    out["log_probs"].sum().backward()
    # d log p_target / dz = onehot(target) - p
    assert torch.allclose(logits.grad, torch.tensor([[-0.25, 0.25], [-0.5, 0.5]]))


def test_models_with_scaled_logits_keep_trls_head() -> None:
    from transformers import LlamaConfig

    from twin_core.training.completion_head import _scaled_logits

    assert not _scaled_logits(LlamaConfig())
    assert _scaled_logits(LlamaConfig(final_logit_softcapping=30.0))
    assert _scaled_logits(LlamaConfig(logit_scale=0.5))


def _trainer(tsettings, kind: str):
    from datasets import Dataset

    from twin_core.llm import rows
    from twin_core.llm.base_model import resolve_base
    from twin_core.training import peft_model as models
    from twin_core.training.profiles import load_profile
    from twin_core.training.trainers import build_trainer, trainer_args

    profile = load_profile(tsettings, "tiny-test").model_copy(update={"packing": True})
    qa = (("Why are idempotent jobs worth it?", "Because reruns are free."), ("Say it shortly.", "Short."),
          ("And the third?", "Retries with backoff, and a log line that says why."))  # fmt: skip
    data = {"sft": [rows.sft_example({"instruction": q, "answer": a}, "Ada") for q, a in qa],
            "dpo": [{"prompt": q, "chosen": a, "rejected": "No idea."} for q, a in qa[:2]]}  # fmt: skip
    model, tokenizer = models.load_for_training(tsettings, profile, resolve_base(tsettings, profile.base_model))
    args = trainer_args(profile, kind, tsettings.home / kind, 1, 1, False)
    args.per_device_train_batch_size = 2
    trainer = build_trainer(kind, profile, args, model, tokenizer, (Dataset.from_list(data[kind]), None), [])
    return trainer, next(iter(trainer.get_train_dataloader()))


def _loss_and_grads(trainer, batch):
    model = trainer.model
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k != "num_tokens" and v}
    return loss.detach(), grads, metrics


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_cpu_trainers_project_labelled_positions_once_with_trls_values(tsettings, kind: str) -> None:
    import torch

    from twin_core.training.completion_head import use_completion_head

    trainer, batch = _trainer(tsettings, kind)
    base = trainer.model.get_base_model()
    assert "_twin_trl_forward" in vars(base)  # build_trainer put the head in on this CPU profile
    projected: list[int] = []
    base.get_output_embeddings().register_forward_hook(lambda m, args, out: projected.append(args[0].shape[0]))

    loss, grads, metrics = _loss_and_grads(trainer, batch)
    labels = batch["labels"] if kind == "sft" else batch["completion_mask"]
    labelled = int((labels[:, 1:] != (-100 if kind == "sft" else 0)).sum())
    # one projection, of the labelled positions only: no prompt token, nothing projected again in backward
    assert projected == ([labelled] if kind == "sft" else [labelled, labelled])  # DPO: policy, then reference

    base.forward = base._twin_trl_forward  # TRL's own tiled head over every position, for reference
    trl_loss, trl_grads, trl_metrics = _loss_and_grads(trainer, batch)
    assert projected == ([labelled] if kind == "sft" else [labelled, labelled])  # TRL's head does not call it
    assert torch.allclose(loss, trl_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == trl_grads.keys() and len(grads) == 2 * 2 * trainer.model.config.num_hidden_layers
    for name, grad in grads.items():
        assert torch.allclose(grad, trl_grads[name], rtol=1e-3, atol=1e-6), name
    assert metrics.keys() == trl_metrics.keys() and {"entropy", "mean_token_accuracy"} <= metrics.keys()
    for name, value in metrics.items():
        assert value == pytest.approx(trl_metrics[name], rel=1e-4, abs=1e-6), name
    assert use_completion_head(trainer.model) and use_completion_head(trainer.model)  # back in; idempotent
    assert base._twin_trl_forward.__func__.__code__.co_name == "_fused_forward"  # still TRL's, not ours
