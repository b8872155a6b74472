"""fit_memory: the micro-batch and the recomputation chosen from a GPU's free memory, the step unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from twin_core.errors import ConfigError
from twin_core.settings import load_settings
from twin_core.training import memory_fit
from twin_core.training.memory_fit import Fit, choose, fit_profile

GIB = 2**30
PER_TOKEN = {False: 100, True: 10}  # bytes per token without / with recomputation


def _llama(**shape: int):  # noqa: ANN202
    from transformers import LlamaConfig

    return LlamaConfig(**shape)


LLAMA_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8)  # fmt: skip
LLAMA_1B = dict(vocab_size=49152, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8)  # benchmarks/random_model.py's "1b"  # fmt: skip


def test_the_largest_micro_batch_that_fits_without_recomputation_comes_first() -> None:
    # 16 sequences of 10 tokens per step; one sequence costs 1.2 x 10 x 100 = 1,200 bytes without recomputation
    assert choose(16, 10, 10_000, 0, PER_TOKEN) == Fit(8, 2, False, 9_600, 10_000)
    assert choose(16, 10, 19_200, 0, PER_TOKEN) == Fit(16, 1, False, 19_200, 19_200)
    # the trained parameters' states come first
    assert choose(16, 10, 10_000, 500, PER_TOKEN) == Fit(4, 4, False, 5_300, 10_000)


def test_recomputation_only_when_not_one_sequence_fits_without_it() -> None:
    assert choose(16, 10, 1_199, 0, PER_TOKEN) == Fit(8, 2, True, 960, 1_199)
    assert choose(16, 10, 1_200, 0, PER_TOKEN) == Fit(1, 16, False, 1_200, 1_200)
    assert choose(16, 10, 119, 0, PER_TOKEN) is None  # nothing fits: the caller keeps the profile


def test_micro_batches_divide_the_step() -> None:
    # 5 sequences (6,000 bytes) would fit, but 12 is not a multiple of 5: the same sequences make each step
    assert choose(12, 10, 6_500, 0, PER_TOKEN) == Fit(4, 3, False, 4_800, 6_500)


@pytest.mark.parametrize(
    ("shape", "card_gib", "weights", "kind", "expected"),
    [
        (LLAMA_8B, 24, 5.6e9, "sft", (8, 2, True)),  # gpu-8b's card: recomputation, micro-batch 8 (was 2)
        (LLAMA_8B, 24, 5.6e9, "dpo", (4, 2, True)),  # a DPO row is two sequences
        (LLAMA_1B, 80, 0.7e9, "sft", (8, 2, False)),  # the lent H100/H200 and the 1.07 B benchmark model
        (LLAMA_8B, 80, 5.6e9, "sft", (2, 8, False)),
    ],
)
def test_gpu_8b_on_the_cards_it_meets(shape: dict, card_gib: int, weights: float, kind: str, expected: tuple) -> None:
    from twin_core.training.profiles import load_profile

    profile = load_profile(load_settings(), "gpu-8b")
    budget = int((card_gib * GIB - int(weights)) * memory_fit.FREE_SHARE) - memory_fit.WORKSPACE
    fitted, fit = fit_profile(profile, kind, _llama(**shape), budget)
    stage, was = getattr(fitted, kind), getattr(profile, kind)
    assert (fit.micro_batch, fit.grad_accum, fit.recompute) == expected
    assert (stage.batch_size, stage.grad_accum, fitted.gradient_checkpointing) == expected
    assert stage.batch_size * stage.grad_accum == was.batch_size * was.grad_accum  # the same step
    assert fit.estimate_bytes <= budget
    others = {k: v for k, v in fitted.public().items() if k not in (kind, "gradient_checkpointing")}
    assert others == {k: v for k, v in profile.public().items() if k not in (kind, "gradient_checkpointing")}


def test_the_estimate_against_the_peaks_measured_on_the_h200() -> None:
    """gpu-8b, 2 x 2,048 tokens with recomputation: trained states + activations, before the safety factor.
    Measured there (plain TRL, the same settings; docs/training.md): 7.9 GiB allocated for the 8B shape with
    about 5.6 GB of 4-bit weights, 1.8 GiB for the 1.07 B model with about 0.7 GB."""
    from twin_core.training.memory_fit import Shape, layer_bytes_per_token, per_token_bytes, trained_parameters

    for shape, weights, measured_gib in ((LLAMA_8B, 5.6e9, 7.9), (LLAMA_1B, 0.7e9, 1.8)):
        s = Shape.of(_llama(**shape))
        targets = memory_fit._targets("all-linear")
        per_token = per_token_bytes(s, layer_bytes_per_token(s, targets, 0.05), recompute=True)
        estimate = 16 * trained_parameters(s, targets, 16, []) + 4096 * per_token + weights
        assert abs(estimate / (measured_gib * GIB) - 1) < 0.1


def test_a_config_the_estimate_does_not_know_keeps_the_profile(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from twin_core.training.profiles import load_profile

    profile = load_profile(load_settings(), "gpu-8b")
    assert fit_profile(profile, "sft", SimpleNamespace(hidden_size=8), 80 * GIB) == (profile, None)
    assert "fit_memory: 'types.SimpleNamespace' object has no attribute 'num_attention_heads'" in caplog.text


def test_fit_memory_is_for_one_gpu_and_leaves_run_ids_alone(tmp_path) -> None:  # noqa: ANN001
    from twin_core.training.profiles import load_profile

    settings = load_settings()
    assert load_profile(settings, "gpu-8b").fit_memory
    assert "fit_memory" not in load_profile(settings, "cpu-tiny").public()  # off: not part of the run id
    for bad in ("device: cpu", "device: gpu\naccelerate: {config_file: x.yaml, num_processes: 2}"):
        path = tmp_path / "bad.yaml"
        path.write_text(f"name: bad\nbase_model: m\n{bad}\nfit_memory: true\n")
        with pytest.raises(ConfigError, match="fit_memory sizes the micro-batch from one GPU's memory"):
            load_profile(settings, str(path))


def test_the_run_takes_the_fitted_plan_only_when_the_profile_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_core.training import run
    from twin_core.training.plan import TrainingPlan
    from twin_core.training.profiles import load_profile

    settings = load_settings()
    model = type("Model", (), {"config": _llama(**LLAMA_8B)})()
    monkeypatch.setattr(memory_fit, "gpu_budget", lambda: 17_079_081_574)  # what a 24 GB card leaves
    plan = TrainingPlan("sft", load_profile(settings, "cpu-tiny"), None, "b", None, [], 10, 5, "rid", False)
    assert run._fit_memory(plan, model) == (plan, None)
    gpu_plan = dataclasses.replace(plan, profile=load_profile(settings, "gpu-8b"))
    fitted, fit = run._fit_memory(gpu_plan, model)
    assert (fitted.profile.sft.batch_size, fitted.profile.sft.grad_accum, fit.recompute) == (8, 2, True)
    assert fitted.run_id == "rid" and fitted.steps == 10
    assert fit.metrics() == {"micro_batch": 8, "grad_accum": 2, "gradient_checkpointing": True,
                             "memory_estimate_gib": 11.09, "memory_budget_gib": 15.91}  # fmt: skip


def _saved_bytes(layers: int, tokens: int, dropout: float) -> int:
    """Bytes of the tensors autograd keeps for a forward of a small bf16 Llama with LoRA on all
    projections under bf16 autocast (as the Trainer runs a bf16 profile), weights left out."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = _llama(vocab_size=1000, hidden_size=256, intermediate_size=1024, num_hidden_layers=layers,
                    num_attention_heads=8, num_key_value_heads=2)  # fmt: skip
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules="all-linear"))
    model.train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, 1000, (1, tokens))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model.base_model.model.model(input_ids=ids)
    return sum(kept.values())


def test_the_estimate_covers_what_autograd_keeps() -> None:
    """Per layer and token: the difference between 2 layers and 1, and between 512 tokens and 256, so
    what does not grow with both (embeddings, the final norm, the adapters' weight casts) cancels. Without
    dropout: on a GPU the dropout mask is one byte (bool), on this CPU four, so only dropout 0 compares."""
    from twin_core.training.memory_fit import Shape, layer_bytes_per_token

    b = {(n, t): _saved_bytes(n, t, 0.0) for n in (1, 2) for t in (256, 512)}
    measured = ((b[2, 512] - b[1, 512]) - (b[2, 256] - b[1, 256])) / 256
    shape = Shape.of(_llama(vocab_size=1000, hidden_size=256, intermediate_size=1024, num_hidden_layers=1,
                            num_attention_heads=8, num_key_value_heads=2))  # fmt: skip
    estimate = layer_bytes_per_token(shape, memory_fit._targets("all-linear"), 0.0)
    assert measured <= estimate <= 1.3 * measured, (measured, estimate)


def test_running_out_of_gpu_memory_says_which_split_and_what_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from twin_core.errors import TwinError
    from twin_core.training import run
    from twin_core.training.plan import TrainingPlan
    from twin_core.training.profiles import load_profile

    settings = load_settings()
    model = type("Model", (), {"config": _llama(**LLAMA_8B)})()
    monkeypatch.setattr(memory_fit, "gpu_budget", lambda: 17_079_081_574)  # what a 24 GB card leaves
    plan = TrainingPlan("sft", load_profile(settings, "gpu-8b"), None, "b", None, [], 10, 5, "rid", False)
    fitted, fit = run._fit_memory(plan, model)

    class Trainer:
        def train(self, resume_from_checkpoint: str | None = None) -> None:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nGPU 0 has 0 bytes free.")

    with pytest.raises(TwinError) as raised:
        run._train(Trainer(), None, fitted, fit)
    assert str(raised.value) == (
        "the GPU ran out of memory training micro-batches of 8 x 2 accumulation, recomputation on (fit_memory's "
        "plan: 11.1 GiB estimated of a 15.9 GiB budget; another process may have taken memory since the model "
        "loaded); fit_memory: false trains the profile's own split. torch: CUDA out of memory. Tried to allocate "
        "2.00 GiB."
    )
    as_written = dataclasses.replace(plan, profile=plan.profile.model_copy(update={"fit_memory": False}))
    with pytest.raises(TwinError, match=r"training micro-batches of 2 x 8 accumulation, recomputation on; lower "
                       r"sft.batch_size and raise sft.grad_accum to keep the step or set fit_memory: true\. torch: "
                       r"CUDA out of memory"):  # fmt: skip
        run._train(Trainer(), None, as_written, None)
    no_recompute = as_written.profile.model_copy(update={"gradient_checkpointing": False})
    advice = memory_fit.out_of_memory_advice(no_recompute, "dpo", None)
    assert advice == (
        "micro-batches of 1 x 8 accumulation, recomputation off; lower dpo.batch_size and raise dpo.grad_accum to "
        "keep the step, turn gradient_checkpointing on or set fit_memory: true"
    )
