"""Fine-tuning the twin: SFT with LoRA/QLoRA, then DPO, with trl + peft.

- ``profiles``: the named hyperparameter sets of ``configs/training/*.yaml`` (cpu-tiny, gpu-8b, gpu-70b);
- ``data``: dataset versions -> rows; ``twin_core.llm.rows`` renders them as conversational examples with
  the one prompt of ``twin_core.llm.prompt``, so training sees exactly what serving sends;
- ``peft_model``: loading for LoRA / QLoRA, pad token and chat template, merging (base-model resolution
  and perplexity live in ``twin_core.llm``, shared with evaluation);
- ``checkpoints``: checkpoints mirrored to the artifact store every N steps, and resumed from it;
- ``tracking``: Comet (online with COMET_API_KEY, else an offline archive stored with the model);
- ``run``: ``run_sft`` / ``run_dpo``, which end with a candidate in the model registry.

Heavy libraries (torch, transformers, trl, peft, comet_ml) are imported inside functions.
"""
