"""The LM head over the completion tokens only, computed once, for CPU training.

TRL's SFTTrainer patches the model with a fused LM head (``add_fused_lm_head``) that returns per-token
log-probabilities without building the ``[tokens, vocabulary]`` logits: it projects in tiles and, in
the backward pass, projects every tile again. On a device without Triton it also projects *every*
position, prompt tokens included, and masks the result afterwards. With SmolLM2's 49,152-token
vocabulary that head was 29 % of a profiled cpu-tiny step.

A CPU has the memory those logits need (cpu profiles: at most 4 x 384 positions, 300 MB per copy), so
here the head projects only the positions with a label, once, and autograd keeps the log-softmax for
the backward pass. The result is TRL's ``FusedCausalLMOutput`` with the same fields, zeros on ignored
positions, so TRL's loss, entropy and token-accuracy metrics are unchanged.
"""

from __future__ import annotations

import types
from typing import Any

IGNORE = -100


def completion_log_probs(logits: Any, targets: Any) -> dict[str, Any]:
    """From ``[N, V]`` logits: each position's log-probability of its target (differentiable), and without
    gradient the entropy, the mean logit and the top-1 hit (the target is the first maximum, as TRL counts)."""
    import torch

    logits = logits.float()
    log_p = torch.log_softmax(logits, dim=-1)
    chosen = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        return {
            "log_probs": chosen,
            "entropy": -(log_p.exp() * log_p).sum(-1),
            "mean_logits": logits.mean(-1),
            "is_top1": log_p.argmax(-1) == targets,
        }


def _scaled_logits(config: Any) -> bool:
    """Models whose head scales or caps its logits keep TRL's head, which knows those transforms."""
    text = config.get_text_config()
    names = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
    return any(getattr(text, name, None) not in (None, 1.0) for name in names)


def _forward(self: Any, *args: Any, fused_lm_head: bool = False, labels: Any = None, shift_labels: Any = None,
             num_items_in_batch: Any = None, **kwargs: Any) -> Any:  # fmt: skip
    from trl.trainer.utils import FusedCausalLMOutput

    if not fused_lm_head:  # generation and plain forwards: the model's own
        return self._twin_trl_forward(*args, labels=labels, shift_labels=shift_labels,
                                      num_items_in_batch=num_items_in_batch, **kwargs)  # fmt: skip
    kwargs["use_cache"] = False
    hidden = self.base_model(*args, **kwargs).last_hidden_state
    if shift_labels is None:
        hidden, labels = hidden[:, :-1], labels[:, 1:]
    else:
        labels = shift_labels
    mask = labels != IGNORE
    per_position = completion_log_probs(self.get_output_embeddings()(hidden[mask]), labels[mask])
    # zeros on ignored positions, as TRL's head; masked_scatter keeps the loss connected to the model even
    # when no position has a label
    full = {name: x.new_zeros(mask.shape).masked_scatter(mask, x) for name, x in per_position.items()}
    count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return FusedCausalLMOutput(loss=-full["log_probs"].sum() / count, label_mask=mask, **full)


def use_completion_head(model: Any) -> bool:
    """Replace TRL's fused head on ``model`` (a PEFT model or the model itself, after SFTTrainer patched
    it) by the completion-only projection. Returns whether it was replaced; idempotent."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if _scaled_logits(base.config):
        return False
    if "_twin_trl_forward" not in vars(base):
        if "forward" not in vars(base):  # no fused head patched on this model: nothing to replace
            return False
        base._twin_trl_forward = base.forward  # TRL's forward: what runs without fused_lm_head
    base.forward = types.MethodType(_forward, base)
    return True
