"""A tiny random Llama with SmolLM2's tokenizer and chat template: a real model folder (config, safetensors,
tokenizer) that loads, trains, merges and generates in milliseconds. For tests of what happens *around*
a model (resume, routing, rollback); tests of what a model learns use the converted SmolLM2 itself, or,
where SmolLM2 learns too little in the steps a CPU test affords, a tiny Llama with a small vocabulary of
its own (``small_vocabulary``) that learns from scratch."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
# SmolLM2's special tokens at SmolLM2's ids (0, 1, 2): its config and generation config stay valid
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def tiny_llama(source: Path, target: Path, seed: int = 0, vocabulary: Path | None = None) -> Path:
    """Write a 2-layer, 32-wide Llama shaped like ``source`` (a converted SmolLM2 folder) to ``target``.

    With ``vocabulary`` (a folder from ``small_vocabulary``), the model uses that tokenizer and has an output
    layer of its own (not tied to the input embeddings) for a profile to train in full (``modules_to_save``)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(source)
    config.update({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2})
    config.update({"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8})
    if vocabulary is not None:
        config.update({"vocab_size": len(AutoTokenizer.from_pretrained(vocabulary)), "tie_word_embeddings": False})
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    for name in TOKENIZER_FILES:
        folder = vocabulary if vocabulary is not None and (vocabulary / name).is_file() else source
        if (folder / name).is_file():
            shutil.copy(folder / name, target / name)
    return target


def small_vocabulary(source: Path, target: Path, texts: Iterable[str], size: int = 2048) -> Path:
    """A byte-level BPE tokenizer of ``size`` tokens learnt from ``texts``, with SmolLM2's special tokens and
    chat template (from ``source``), written to ``target``. Why: on CPU, TRL scores every position of a
    training sequence against the whole vocabulary, about 3 ms a position with SmolLM2's 49k tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # every byte: any text encodes, nothing is unknown
    trainer = trainers.BpeTrainer(
        vocab_size=size, special_tokens=list(SPECIAL_TOKENS), initial_alphabet=alphabet, show_progress=False
    )
    bpe.train_from_iterator(texts, trainer)
    end, start, stop = SPECIAL_TOKENS
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=start, eos_token=stop, pad_token=stop, unk_token=end
    )
    tokenizer.chat_template = (source / "chat_template.jinja").read_text()
    tokenizer.save_pretrained(target)
    shutil.copy(source / "generation_config.json", target / "generation_config.json")
    return target
