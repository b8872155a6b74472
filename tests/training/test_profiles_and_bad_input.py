"""Profiles, and bad input refused before any training: exit codes, clear messages, nothing registered."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from twin_core.errors import ConfigError
from twin_core.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_repo_profiles_load() -> None:
    from twin_core.training.profiles import available_profiles, load_profile

    settings = load_settings()
    assert {"cpu-tiny", "gpu-8b", "gpu-70b"} <= set(available_profiles(settings))
    tiny = load_profile(settings, "cpu-tiny")
    assert (tiny.device, tiny.quantization, tiny.precision) == ("cpu", None, "fp32")
    gpu = load_profile(settings, "gpu-8b")
    assert gpu.device == "gpu" and gpu.quantization.bits == 4 and gpu.quantization.quant_type == "nf4"
    assert gpu.precision == "bf16" and gpu.packing and gpu.gradient_checkpointing
    big = load_profile(settings, "gpu-70b")
    assert big.accelerate.num_processes == 4 and big.execution_profile == "gpu-multi"
    assert Path(big.accelerate.config_file).is_file() and big.quantization.quant_storage == "bfloat16"
    assert tiny.dpo.beta == 0.1 and gpu.dpo.beta == 0.5
    with pytest.raises(ConfigError, match="unknown training profile 'nope'"):
        load_profile(settings, "nope")


def test_a_profile_that_is_not_a_mapping_or_invalid_is_one_clean_config_error(
    twin, train_env, instruct_version: str, tmp_path: Path
) -> None:
    from twin_core.training.profiles import load_profile

    listed = tmp_path / "listed.yaml"
    listed.write_text("- name: tiny-test\n- device: cpu\n")
    run = twin("train", "sft", "--dataset", instruct_version, "--profile", str(listed), env=train_env)
    assert run.returncode == 2, run.stderr
    assert run.result["error"] == (
        f"training profile {listed}: expected a mapping of settings (name: ..., base_model: ...), got a list"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbase_model: x\ndevice: tpu\nsft: {max_steps: -1}\n")
    with pytest.raises(ConfigError) as err:
        load_profile(load_settings(), str(bad))
    assert str(err.value) == (
        f"training profile {bad}: 2 invalid settings: device: Input should be 'cpu' or 'gpu' (got 'tpu'); "
        "sft.max_steps: Input should be greater than or equal to 0 (got -1)"
    )


def test_accelerate_launch_command() -> None:
    from twin_core.training.launch import launch_command
    from twin_core.training.profiles import load_profile

    big = load_profile(load_settings(), "gpu-70b")
    cmd = launch_command(big, ["train", "sft", "--dataset", "instruct/a/v0001", "--profile", "gpu-70b"])
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[cmd.index("--config_file") + 1].endswith("configs/training/accelerate-fsdp.yaml")
    assert cmd[-7:] == ["twin_core.cli.main", "train", "sft", "--dataset", "instruct/a/v0001", "--profile", "gpu-70b"]


def test_lora_modules_to_save_reach_peft() -> None:
    """A profile can train whole modules beside the adapter (a tiny model's output layer); none by default."""
    from twin_core.training.peft_model import lora_config
    from twin_core.training.profiles import LoraSpec, load_profile

    tiny = load_profile(load_settings(), "cpu-tiny")
    assert tiny.lora.modules_to_save == [] and lora_config(tiny).modules_to_save is None
    full = tiny.model_copy(update={"lora": LoraSpec(r=32, alpha=32, modules_to_save=["lm_head"])})
    assert list(lora_config(full).modules_to_save) == ["lm_head"]


def _registered(settings) -> list:
    from twin_core.stores.registry import open_registry

    return open_registry(settings).list()


def test_gpu_profile_without_gpu_is_refused(twin, train_env, tsettings, instruct_version: str) -> None:
    run = twin("train", "sft", "--dataset", instruct_version, "--profile", "gpu-8b", env=train_env)
    assert run.returncode == 2, run.stderr
    assert "needs a CUDA GPU and none is visible" in run.result["error"] and "gpu-8b" in run.result["error"]
    assert _registered(tsettings) == []


def test_missing_and_empty_datasets_exit_3(twin, train_env, tsettings) -> None:
    from training_fixtures import write_dataset

    run = twin("train", "sft", "--dataset", "instruct/ada-quillfeather/v0042", "--profile", "tiny-test", env=train_env)
    assert run.returncode == 3 and "v0042" in run.result["error"]
    empty = write_dataset(tsettings, "instruct", [], [])
    run = twin("train", "sft", "--dataset", empty, "--profile", "tiny-test", env=train_env)
    assert run.returncode == 3 and "no usable training rows" in run.result["error"]
    pref = write_dataset(tsettings, "preference", [], [])
    run = twin("train", "sft", "--dataset", pref, "--profile", "tiny-test", env=train_env)
    assert run.returncode == 3 and "is a preference dataset" in run.result["error"]
    assert _registered(tsettings) == []


def test_dpo_needs_a_known_sft_model(twin, train_env, tsettings, preference_version: str) -> None:
    run = twin(
        "train", "dpo", "--dataset", preference_version, "--from", "ada-quillfeather/v0007",
        "--profile", "tiny-test", env=train_env,
    )  # fmt: skip
    assert run.returncode == 3 and "unknown model version ada-quillfeather/v0007" in run.result["error"]


def test_base_model_not_available_offline_names_it(twin, train_env, tsettings, instruct_version: str, tmp_path) -> None:
    profile = tmp_path / "offline.yaml"
    text = (Path(__file__).parent / "profiles" / "tiny-test.yaml").read_text()
    profile.write_text(text.replace("base_model: smollm2-135m-instruct-gguf", "base_model: acme/not-cached-8b"))
    run = twin("train", "sft", "--dataset", instruct_version, "--profile", str(profile), env=train_env)
    assert run.returncode == 2
    assert run.result["error"] == f"base model 'acme/not-cached-8b' cannot be loaded offline ({OFFLINE_HINT}): OSError"
    assert _registered(tsettings) == []


OFFLINE_HINT = (
    "not in the Hugging Face cache; download it first, or set TWIN_HF_OFFLINE=false with HF_HUB_OFFLINE unset or 0 "
    "to fetch it from the Hub"
)


@pytest.mark.parametrize(
    ("twin_hf_offline", "hf_hub_offline"), [(True, None), (True, "0"), (False, "1")], ids=["default", "hub0", "hub1"]
)
def test_an_uncached_base_model_names_the_settings_that_go_online(
    monkeypatch: pytest.MonkeyPatch, twin_hf_offline: bool, hf_hub_offline: str | None
) -> None:
    """Offline is TWIN_HF_OFFLINE (default true) or HF_HUB_OFFLINE: HF_HUB_OFFLINE=0 alone changes nothing."""
    from twin_core.llm.base_model import resolve_base

    if hf_hub_offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", hf_hub_offline)
    with pytest.raises(ConfigError) as err:
        resolve_base(load_settings(hf_offline=twin_hf_offline), "acme/not-cached-8b")
    assert str(err.value) == f"base model 'acme/not-cached-8b' cannot be loaded offline ({OFFLINE_HINT}): OSError"


def test_a_base_model_the_hub_does_not_give_is_not_called_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    from twin_core.llm.base_model import resolve_base

    calls: list[bool] = []

    def refuse(name: str, local_files_only: bool = False, **kw: object) -> None:
        calls.append(local_files_only)
        raise OSError("acme/not-on-the-hub-8b is not a valid model identifier")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", refuse)
    with pytest.raises(ConfigError) as err:
        resolve_base(load_settings(hf_offline=False), "acme/not-on-the-hub-8b")
    assert calls == [False]  # the Hub was asked
    reason = "not a local folder, and the Hub did not give it"
    assert str(err.value) == f"base model 'acme/not-on-the-hub-8b' cannot be loaded ({reason}): OSError"


def test_parquet_fixture_layout(tsettings, instruct_version: str) -> None:
    """The fixture writes the CONTRACTS §2 layout (guards the tests against drifting from it)."""
    import pyarrow.parquet as pq

    from twin_core.stores.artifacts import open_artifact_store

    store = open_artifact_store(tsettings)
    kind, slug, version = instruct_version.split("/")
    av = store.get_version(f"datasets/{kind}/{slug}", version)
    assert {"train.parquet", "test.parquet"} <= set(av.metadata["files"])
    table = pq.read_table(io.BytesIO(store.read_version_file(f"datasets/{kind}/{slug}", version, "train.parquet")))
    assert table.column_names == ["id", "instruction", "answer", "document_id", "category", "link", "split"]


def _load_without_weights(monkeypatch: pytest.MonkeyPatch, settings, profile_name: str) -> dict:  # noqa: ANN001
    """``load_for_training`` with transformers' loaders replaced: the keyword arguments the model got."""
    from types import SimpleNamespace

    import transformers

    from twin_core.training import peft_model
    from twin_core.training.profiles import load_profile

    seen: dict = {}

    def model_from(location: str, **kwargs: object) -> SimpleNamespace:
        seen.update(kwargs)
        return SimpleNamespace(config=SimpleNamespace(use_cache=True))

    tokenizer = SimpleNamespace(pad_token="<pad>", eos_token="</s>", chat_template="{{ x }}", padding_side="left")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_from)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda location, **kw: tokenizer)
    model, _ = peft_model.load_for_training(settings, load_profile(settings, profile_name), "/m")
    assert model.config.use_cache is False
    return seen


@pytest.mark.parametrize(
    ("profile_name", "local_rank", "device_map"),
    [("gpu-small", None, {"": 0}), ("gpu-8b", "1", {"": 1}), ("gpu-70b", None, None), ("cpu-tiny", None, None)],
)
def test_one_gpu_profiles_load_straight_onto_their_gpu(profile_name, local_rank, device_map, monkeypatch) -> None:  # noqa: ANN001
    # without a device map a bf16 model waited on the CPU until the Trainer moved it, and the held-out
    # perplexity before training ran on the pod's CPU; FSDP (gpu-70b) places its shards itself
    if local_rank:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    else:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert _load_without_weights(monkeypatch, load_settings(), profile_name).get("device_map") == device_map


def test_twin_training_fused_varlen_false_keeps_packed_rows_off_the_fused_kernel(monkeypatch) -> None:  # noqa: ANN001
    from twin_core.training import varlen_attention

    monkeypatch.setattr(varlen_attention, "_given_up", [])
    monkeypatch.setattr(varlen_attention, "_cuda_kernel", lambda query: "the kernel")  # as on a GPU
    for fused, kernel in ((False, None), (True, "the kernel")):
        seen = _load_without_weights(monkeypatch, load_settings(training_fused_varlen=fused), "gpu-8b")
        assert seen["attn_implementation"] == varlen_attention.NAME
        assert varlen_attention.fused_kernel(object()) == kernel
