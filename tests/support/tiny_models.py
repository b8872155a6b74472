"""A tiny random Llama with SmolLM2's tokenizer and chat template: a real model folder (config, safetensors,
tokenizer) that loads, trains, merges and generates in milliseconds. For tests of what happens *around*
a model (resume, routing, rollback); tests of what a model learns use the converted SmolLM2 itself."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


def tiny_llama(source: Path, target: Path, seed: int = 0) -> Path:
    """Write a 2-layer, 32-wide Llama shaped like ``source`` (a converted SmolLM2 folder) to ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source)
    config.update({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2})
    config.update({"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8})
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    return target
