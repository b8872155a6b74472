"""PEFT models for training: loading (LoRA / QLoRA), pad token and chat template, merging the adapter.

Where the base model's weights are is ``twin_core.llm.base_model.resolve_base``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from twin_core.errors import ConfigError
from twin_core.llm.base_model import offline
from twin_core.settings import Settings
from twin_core.training.profiles import TrainingProfile

log = logging.getLogger(__name__)

# A ChatML template for base models that have none (same layout as SmolLM2 / Qwen instruct models).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Pad tokens the families of the Handbook reserve for it (never the EOS: padding with EOS would mask
# the EOS label of every example, and the model would not learn to stop).
_PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|fim_pad|>", "<|endoftext|>", "<pad>", "<unk>")


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Pad token and chat template for Llama, Mistral, Qwen and SmolLM tokenizers."""
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        vocab = tokenizer.get_vocab()
        pad = next((t for t in _PAD_CANDIDATES if t in vocab and t != tokenizer.eos_token), None)
        if pad is not None:
            tokenizer.pad_token = pad
        elif tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "right"
    return tokenizer


def check_device(profile: TrainingProfile) -> None:
    """A GPU profile on a machine without a GPU is refused (never a silent CPU run of an 8B model)."""
    if profile.device != "gpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"training profile {profile.name!r} needs a CUDA GPU and none is visible on this machine; "
            "use --profile cpu-tiny here, or run the twin_training DAG in kubernetes mode on the GPU pool"
        )


def _dtype(profile: TrainingProfile) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[profile.precision]


def load_tokenizer(settings: Settings, location: str) -> Any:
    """The prepared tokenizer of a resolved location (no weights: cheap, before the model loads)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=offline(settings))
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"base model {location!r} cannot be loaded: {type(exc).__name__}: {exc}") from None
    return prepare_tokenizer(tokenizer)


def load_for_training(
    settings: Settings, profile: TrainingProfile, location: str, tokenizer: Any = None
) -> tuple[Any, Any]:
    """Model (4-bit when the profile says so) and prepared tokenizer (``tokenizer``, if already loaded) from a
    resolved location."""
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(settings, location)
    local_only = offline(settings)
    kwargs: dict[str, Any] = {"local_files_only": local_only, "dtype": _dtype(profile)}
    if profile.packing:  # packed rows: attention per example, not over the row through a block mask
        from twin_core.training.varlen_attention import register

        kwargs["attn_implementation"] = register(fused=settings.training.fused_varlen)
    if profile.quantization:
        import torch
        from transformers import BitsAndBytesConfig

        q = profile.quantization
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=q.bits == 4,
            load_in_8bit=q.bits == 8,
            bnb_4bit_quant_type=q.quant_type,
            bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, q.compute_dtype),
            bnb_4bit_quant_storage=getattr(torch, q.quant_storage) if q.quant_storage else torch.uint8,
        )
    if profile.device == "gpu" and not profile.accelerate:  # FSDP places the shards itself
        # straight onto the GPU: the held-out perplexity before training runs there too, not on the
        # pod's CPU (it did for profiles without quantization, until the Trainer moved the model)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    try:
        model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"base model {location!r} cannot be loaded: {type(exc).__name__}: {exc}") from None
    model.config.use_cache = False
    return model, tokenizer


def lora_config(profile: TrainingProfile) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=profile.lora.r,
        lora_alpha=profile.lora.alpha,
        lora_dropout=profile.lora.dropout,
        target_modules=profile.lora.target_modules,
        modules_to_save=profile.lora.modules_to_save or None,
        bias="none",
        task_type="CAUSAL_LM",
    )


def save_model_folder(
    trained: Any, tokenizer: Any, out: Path, profile: TrainingProfile, base_location: str, settings: Settings
) -> None:
    """Write ``out/adapter`` (LoRA) and ``out/merged`` (base + adapter merged, with the tokenizer).

    QLoRA adapters are merged into a bf16 reload of the base, never into the 4-bit weights.
    """
    adapter_dir, merged_dir = out / "adapter", out / "merged"
    trained.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    if profile.quantization:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(
            base_location, dtype=_dtype(profile), local_files_only=offline(settings)
        )
        merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    else:
        merged = trained.merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(merged_dir, safe_serialization=True)
    tokenizer.padding_side = "left"  # what batched generation wants at serving time
    tokenizer.save_pretrained(merged_dir)
