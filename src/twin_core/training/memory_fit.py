"""The micro-batch sized from the GPU's memory, recomputation only when memory needs it (``fit_memory``).

A profile names how many sequences make one optimizer step (``batch_size x grad_accum``); how they are
split into micro-batches changes the speed and the memory, not the training. On a GPU, a profile with
``fit_memory: true`` keeps that number and chooses, from the memory free once the model is loaded:

1. without recomputation (gradient checkpointing costs about a third more compute), the largest
   micro-batch that divides the step and fits;
2. only if not even one sequence fits that way, recomputation, with the largest micro-batch that fits;
3. if nothing fits, the profile as written (and a warning: it may run out of memory).

The activations are estimated per token from the model's shape (below); ``SAFETY`` covers what the
estimate leaves out. Checked against the peaks measured on the lent H200 (``docs/training.md``, QLoRA
r=16 on all projections, recomputation, 2 x 2,048 tokens): a 1.07 B Llama, states and activations
estimated at 1.13 GB + 0.7 GB of 4-bit weights = 1.83 GB, measured 1.93 GB (1.8 GiB) allocated;
Llama-3.1-8B's shape, 3.0 GB + 5.6 GB = 8.6 GB, measured 8.5 GB (7.9 GiB). The run's metrics give the
plan, the estimate and the measured peak (``peak_memory_gib``), so every run checks it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin_core.training.trainers import Kind, stage_of

if TYPE_CHECKING:
    from twin_core.training.profiles import TrainingProfile

log = logging.getLogger(__name__)

SAFETY = 1.2  # activations: the estimate times this
WORKSPACE = 1 << 30  # bytes kept for the CUDA context, cuBLAS/attention workspaces, the LM head's tiles
FREE_SHARE = 0.9  # of the free memory: the caching allocator's fragmentation
BF16 = 2
STATE_BYTES = 16  # per trained parameter: fp32 weight, gradient and two Adam moments
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Shape:
    """What the estimate needs from a decoder-only (Llama-like) model config."""

    hidden: int
    intermediate: int
    layers: int
    q_dim: int
    kv_dim: int
    vocab: int

    @classmethod
    def of(cls, config: Any) -> Shape:
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return cls(config.hidden_size, config.intermediate_size, config.num_hidden_layers, heads * head_dim,
                   kv_heads * head_dim, config.vocab_size)  # fmt: skip

    def input_width(self, module: str) -> int:
        return {"o_proj": self.q_dim, "down_proj": self.intermediate}.get(module, self.hidden)

    def output_width(self, module: str) -> int:
        widths = {"q_proj": self.q_dim, "k_proj": self.kv_dim, "v_proj": self.kv_dim, "gate_proj": self.intermediate,
                  "up_proj": self.intermediate}  # fmt: skip
        return widths.get(module, self.hidden)


@dataclass(frozen=True)
class Fit:
    micro_batch: int
    grad_accum: int
    recompute: bool
    estimate_bytes: int  # trained-parameter states + activations at that micro-batch (weights not included)
    budget_bytes: int

    def metrics(self) -> dict[str, Any]:
        return {"micro_batch": self.micro_batch, "grad_accum": self.grad_accum,
                "gradient_checkpointing": self.recompute, "memory_estimate_gib": round(self.estimate_bytes / 2**30, 2),
                "memory_budget_gib": round(self.budget_bytes / 2**30, 2)}  # fmt: skip


def _targets(target_modules: list[str] | str) -> tuple[str, ...]:
    if isinstance(target_modules, str):  # "all-linear" (or a regex: counted as all of them)
        return _ATTENTION + _MLP
    return tuple(m for m in _ATTENTION + _MLP if m in target_modules)


def layer_bytes_per_token(shape: Shape, targets: tuple[str, ...], lora_dropout: float) -> int:
    """What autograd keeps per token for one decoder layer under bf16 autocast, the frozen weights
    keeping no input: the two RMSNorms, attention (q, k, v, output; a fused kernel keeps no score
    matrix), the SwiGLU MLP (gate, its SiLU, up, their product), the residual stream, and per adapted
    module the bf16 copy of its input that autocast hands PEFT's fp32 adapter (one per module, not
    shared), plus the dropout mask. Checked against autograd's own saved tensors on a small model
    (``test_the_estimate_covers_what_autograd_keeps``): about 20 % above it, so on the safe side."""
    norms = 2 * (4 + BF16) * shape.hidden
    attention = BF16 * (2 * shape.q_dim + 2 * shape.kv_dim)
    mlp = 4 * BF16 * shape.intermediate
    lora = (BF16 + (1 if lora_dropout else 0)) * sum(shape.input_width(m) for m in targets)
    return norms + attention + mlp + lora + BF16 * shape.hidden


def trained_parameters(shape: Shape, targets: tuple[str, ...], rank: int, modules_to_save: list[str]) -> int:
    """LoRA's A and B for every adapted module of every layer, plus modules trained in full."""
    per_layer = sum(rank * (shape.input_width(m) + shape.output_width(m)) for m in targets)
    full = shape.vocab * shape.hidden * sum(m in ("lm_head", "embed_tokens") for m in modules_to_save)
    return shape.layers * per_layer + full


def per_token_bytes(shape: Shape, layer: int, recompute: bool) -> int:
    """Without recomputation every layer's activations are kept; with it, each layer's input, and one
    layer's activations while that layer is recomputed in the backward pass."""
    return shape.layers * BF16 * shape.hidden + layer if recompute else shape.layers * layer


def choose(sequences_per_step: int, tokens_per_sequence: int, budget: int, states: int,
           per_token: dict[bool, int]) -> Fit | None:  # fmt: skip
    """The first plan that fits: no recomputation before recomputation, then the largest micro-batch
    that divides the step. None when even one sequence with recomputation does not fit."""
    divisors = [d for d in range(sequences_per_step, 0, -1) if sequences_per_step % d == 0]
    for recompute in (False, True):
        for micro in divisors:
            need = states + int(SAFETY * micro * tokens_per_sequence * per_token[recompute])
            if need <= budget:
                return Fit(micro, sequences_per_step // micro, recompute, need, budget)
    return None


def fit_profile(profile: TrainingProfile, kind: Kind, config: Any, budget: int) -> tuple[TrainingProfile, Fit | None]:
    """The profile with the stage's micro-batch, accumulation and recomputation fitted to ``budget``
    bytes (the memory the run may use beyond the model's weights); unchanged when nothing fits."""
    try:
        shape = Shape.of(config)
    except AttributeError as exc:  # not a decoder config this estimate knows
        log.warning("fit_memory: %s; the profile's plan is kept", exc)
        return profile, None
    targets = _targets(profile.lora.target_modules)
    layer = layer_bytes_per_token(shape, targets, profile.lora.dropout)
    states = STATE_BYTES * trained_parameters(shape, targets, profile.lora.r, profile.lora.modules_to_save)
    stage = stage_of(profile, kind)
    sequences = 2 if kind == "dpo" else 1  # a DPO row is its chosen and its rejected answer
    per_token = {r: per_token_bytes(shape, layer, r) for r in (False, True)}
    fit = choose(stage.batch_size * stage.grad_accum, sequences * profile.max_length, budget, states, per_token)
    if fit is None:
        log.warning("fit_memory: not even one sequence of %d tokens fits in %.1f GiB with recomputation; the "
                    "profile's plan is kept and may run out of memory", profile.max_length, budget / 2**30)  # fmt: skip
        return profile, None
    fitted = stage.model_copy(update={"batch_size": fit.micro_batch, "grad_accum": fit.grad_accum})
    update = {kind: fitted, "gradient_checkpointing": fit.recompute}
    log.info("fit_memory: micro-batch %d x %d accumulation, recomputation %s; estimate %.1f of %.1f GiB",
             fit.micro_batch, fit.grad_accum, "on" if fit.recompute else "off", fit.estimate_bytes / 2**30,
             budget / 2**30)  # fmt: skip
    return profile.model_copy(update=update), fit


def out_of_memory_advice(profile: TrainingProfile, kind: Kind, fit: Fit | None) -> str:
    """What a run that ran out of GPU memory was doing, and what to change."""
    stage = stage_of(profile, kind)
    doing = (f"micro-batches of {stage.batch_size} x {stage.grad_accum} accumulation, recomputation "
             f"{'on' if profile.gradient_checkpointing else 'off'}")  # fmt: skip
    if fit:
        return (f"{doing} (fit_memory's plan: {fit.estimate_bytes / 2**30:.1f} GiB estimated of a "
                f"{fit.budget_bytes / 2**30:.1f} GiB budget; another process may have taken memory since the "
                "model loaded); fit_memory: false trains the profile's own split")  # fmt: skip
    changes = [f"lower {kind}.batch_size and raise {kind}.grad_accum to keep the step"]
    if not profile.gradient_checkpointing:
        changes.append("turn gradient_checkpointing on")
    if not profile.accelerate:
        changes.append("set fit_memory: true")
    return f"{doing}; {', '.join(changes[:-1])} or {changes[-1]}" if len(changes) > 1 else f"{doing}; {changes[0]}"


def gpu_budget() -> int:
    """Bytes this run may use on the current GPU beyond the weights (``load_for_training`` puts a one-GPU
    profile's weights there, so the free memory is already net of them): a share of it, less a fixed
    workspace."""
    import torch

    free, _ = torch.cuda.mem_get_info()
    return int(free * FREE_SHARE) - WORKSPACE


def peak_gib() -> float | None:
    """The run's peak allocated GPU memory, or None on a CPU."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
