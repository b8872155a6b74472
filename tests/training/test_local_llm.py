"""The local LLM (evaluation, rejected answers, `twin serve`): CPU by default, greedy text batch-invariant."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_cpu_by_default_and_batched_greedy_equals_unbatched(llm_models_dir: Path, monkeypatch) -> None:
    import torch

    from twin_core.llm.loading import load_local_llm, placement
    from twin_core.llm.local import GenRequest
    from twin_core.settings import load_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU default, also on a GPU machine
    assert placement() == ("cpu", None)
    llm = load_local_llm(load_settings(llm_models_dir=llm_models_dir, llm_threads=1))
    assert llm.model.device.type == "cpu" and hasattr(llm.model.lm_head, "_twin_packed")  # llm/cpu_decode.py
    prompts = [("Hi", 6), ("Why do random IDs break upserts when a job is rerun?", 12), ("What is HNSW?", 8)]
    requests = [GenRequest([{"role": "user", "content": p}], n, 0.0) for p, n in prompts]
    alone = [llm.generate_batch([r])[0] for r in requests]
    together = llm.generate_batch(requests)  # left-padded to the longest prompt, one generate call
    assert [g.text for g in together] == [g.text for g in alone]
    assert [g.completion_tokens for g in together] == [g.completion_tokens for g in alone]


def test_packed_decode_weights_can_be_turned_off(llm_models_dir: Path, monkeypatch) -> None:
    import torch

    from twin_core.llm.loading import PACKAGED_DIRNAME, load_local_folder, load_local_llm
    from twin_core.settings import load_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    load_local_llm(load_settings(llm_models_dir=llm_models_dir, llm_threads=1))  # converts the GGUF once
    monkeypatch.setenv("TWIN_LLM_PACK_DECODE", "false")
    settings = load_settings(llm_models_dir=llm_models_dir, llm_threads=1)
    assert settings.llm.pack_decode is False
    plain = load_local_folder(settings, llm_models_dir / PACKAGED_DIRNAME, "plain")
    assert not any(hasattr(m, "_twin_packed") for m in plain.model.modules())
    assert plain.chat([{"role": "user", "content": "Hi"}], max_new_tokens=3).completion_tokens >= 1


def test_placement_prefers_a_cuda_gpu_in_bf16(monkeypatch) -> None:
    import torch

    from twin_core.llm.loading import placement

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert placement() == ("cuda", torch.bfloat16)


def test_twin_llm_device_chooses_the_cpu_or_demands_a_gpu(monkeypatch, tmp_path: Path) -> None:
    import torch

    from twin_core.errors import ConfigError
    from twin_core.llm import loading
    from twin_core.settings import load_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loading.placement("cpu") == ("cpu", None)  # a GPU machine can keep the local LLM off its GPU
    assert loading.placement("cuda") == ("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loading.placement("auto") == ("cpu", None)
    with pytest.raises(ConfigError, match="TWIN_LLM_DEVICE=cuda: no CUDA GPU"):
        loading.placement("cuda")

    def no_weights(*_args: object, **_kw: object) -> None:
        raise AssertionError("weights loaded before the device was checked")

    monkeypatch.setattr(loading, "_load_pretrained", no_weights)
    monkeypatch.setenv("TWIN_LLM_DEVICE", "cuda")
    settings = load_settings(llm_models_dir=tmp_path)
    assert settings.llm.device == "cuda"
    with pytest.raises(ConfigError, match="TWIN_LLM_DEVICE=cuda"):
        loading.load_local_llm(settings)
    with pytest.raises(ConfigError, match="TWIN_LLM_DEVICE=cuda"):
        loading.load_local_folder(settings, tmp_path, "v1")
    monkeypatch.setenv("TWIN_LLM_DEVICE", "gpu")
    with pytest.raises(ConfigError, match="TWIN_LLM_DEVICE"):
        load_settings()
