"""Fine-tuning the twin: SFT with LoRA/QLoRA, then DPO, with trl + peft.

- ``profiles``: the named hyperparameter sets of ``configs/training/*.yaml`` (cpu-tiny, gpu-8b, gpu-70b);
- ``data``: dataset versions -> conversational prompt-completion / preference examples, built with
  the one prompt of ``twin_core.llm.prompt`` so training sees exactly what serving sends;
- ``model``: base model resolution (the packaged SmolLM2 is de-quantized once), LoRA, merging;
- ``checkpoints``: checkpoints mirrored to the artifact store every N steps, and resumed from it;
- ``tracking``: Comet (online with COMET_API_KEY, else an offline archive stored with the model);
- ``metrics``: ``perplexity(model, tokenizer, texts)``, reused by evaluation;
- ``run``: ``run_sft`` / ``run_dpo``, which end with a candidate in the model registry.

Heavy libraries (torch, transformers, trl, peft, comet_ml) are imported inside functions.
"""
