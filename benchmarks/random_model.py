"""A random-init Llama of a named shape with the SmolLM2 tokenizer, saved as a model folder.

No weights reach a lent device (its image reaches no hub, and the packaged GGUF is larger than what a call
carries), so the GPU benchmarks build their model there: speed, memory and the code path are measured;
the quality of the text is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8),
    "smollm2": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, rope_theta=100000.0),  # SmolLM2-135M-Instruct, the local LLM
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
}  # fmt: skip


def save_random_llama(folder: Path, shape: str, tokenizer: str | None, *, dtype: str = "bfloat16",
                      embed_scale: float = 1.0) -> Path:  # fmt: skip
    """Seed 0, ``SHAPES[shape]``, the tokenizer from ``tokenizer`` (a folder) or the packaged SmolLM2's.
    ``embed_scale`` multiplies the (tied) embeddings: a random model's logits are nearly flat, so greedy
    choices are near-ties that any change in the order of a sum flips; scaled logits are peaked like a
    trained model's."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from twin_core.llm.base_model import resolve_base
    from twin_core.settings import get_settings

    tok = AutoTokenizer.from_pretrained(tokenizer or resolve_base(get_settings(), "packaged"))
    cfg = LlamaConfig(vocab_size=len(tok), tie_word_embeddings=True, max_position_embeddings=8192,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **SHAPES[shape])  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    if embed_scale != 1.0:
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(embed_scale)
    model.to(getattr(torch, dtype)).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
