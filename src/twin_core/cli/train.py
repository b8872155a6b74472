"""`twin train`: fine-tune the twin on a dataset version (SFT with LoRA, then DPO), register a candidate."""

from __future__ import annotations

from typing import Any

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="Fine-tune the twin (SFT with LoRA, then DPO).", no_args_is_help=True)

_PROFILE_HELP = (
    "Training profile: configs/training/<name>.yaml (cpu-tiny, cpu-small, gpu-8b, gpu-70b); "
    "default TWIN_TRAINING_PROFILE."
)
_STEPS_HELP = "Cap the optimizer steps (0 = the profile's; TWIN_TRAINING_MAX_STEPS)."
_RESUME_HELP = "Continue from the newest checkpoint of the same run in the artifact store (none: start)."


def _report(result: dict) -> None:
    import sys

    m = result["metrics"]
    # a finished run taken from its checkpoint trained nothing in this process: no throughput
    speed = f"{m['tokens_per_s']} tokens/s" if m["tokens_per_s"] is not None else "taken from its last checkpoint as is"
    print(
        f"{result['model']} ({result['stage']}): loss {m['first_loss']} -> {m['last_loss']} "
        f"in {m['global_step']} steps; "
        f"held-out perplexity base {m['perplexity_base']} -> trained {m['perplexity_trained']}; {speed}",
        file=sys.stderr,
    )


def _check_refs(kind: str, dataset: str, from_ref: str | None) -> None:
    """A malformed --dataset (or one of the other kind) or --from, named by its option, before anything loads
    (a profile, a GPU relaunch, the dataset): the stores' own messages name neither option."""
    from twin_core.datasets.versions import parse_version_id
    from twin_core.errors import InputError
    from twin_core.stores.registry import parse_ref

    want = "instruct" if kind == "sft" else "preference"
    expected = f"{want}/<author_slug>/vNNNN, e.g. {want}/paul-iusztin/v0001 (see `twin datasets list`)"
    try:
        got = parse_version_id(dataset)[0]
    except InputError:
        raise InputError(f"--dataset {dataset!r}: expected {expected}") from None
    if got != want:
        article = "an" if got == "instruct" else "a"
        raise InputError(f"--dataset {dataset!r} is {article} {got} dataset; twin train {kind} needs {expected}")
    if from_ref is not None:
        try:
            parse_ref(from_ref)
        except InputError:
            raise InputError(
                f"--from {from_ref!r}: expected the SFT model version <author_slug>/vNNNN, e.g. paul-iusztin/v0001 "
                "(see `twin registry list`)"
            ) from None


def _check_known(settings: Any, dataset: str, from_ref: str | None) -> None:
    """An unknown --dataset or --from named by its option, with the versions there are, before a GPU relaunch
    starts or a model loads (the stores' own messages name no option)."""
    from twin_core.cli.versions import known_version
    from twin_core.datasets.versions import load_dataset_version
    from twin_core.errors import InputError
    from twin_core.stores.registry import open_registry

    try:
        load_dataset_version(settings, dataset)
    except InputError as exc:
        raise InputError(f"--dataset {dataset!r}: {exc}") from None
    if from_ref is not None:
        known_version(open_registry(settings), from_ref, "--from")


def _run(
    kind: str, dataset: str, profile: str | None, resume: bool, max_steps: int | None, from_ref: str | None = None
) -> dict:
    _check_refs(kind, dataset, from_ref)
    from twin_core.progress import progress
    from twin_core.settings import get_settings, updated
    from twin_core.training.launch import maybe_relaunch, publish_result
    from twin_core.training.profiles import load_profile
    from twin_core.training.run import run_training

    settings = get_settings()
    if max_steps:
        settings = updated(settings, training_max_steps=max_steps)
    load_profile(settings, profile)  # a bad --profile first, as before
    _check_known(settings, dataset, from_ref)
    relaunched = maybe_relaunch(settings, profile)
    if relaunched is not None:
        return relaunched
    result = run_training(
        settings,
        kind,  # type: ignore[arg-type]
        dataset,
        profile_name=profile,
        from_ref=from_ref,
        resume=resume,
        progress=progress,  # a bar on stderr: steps, loss, tokens/s
    )
    if "model" in result:  # rank 0 (or a single process)
        _report(result)
        publish_result(result)
    return result


@app.command("sft")
@step("train.sft")
def sft(
    dataset: str = typer.Option(..., "--dataset", help="Instruct dataset version: instruct/<author_slug>/vNNNN."),
    profile: str = typer.Option(None, "--profile", help=_PROFILE_HELP),
    resume: bool = typer.Option(False, "--resume", help=_RESUME_HELP),
    max_steps: int = typer.Option(0, "--max-steps", min=0, help=_STEPS_HELP),
) -> dict:
    """Supervised fine-tuning with LoRA (QLoRA on GPU profiles); registers a candidate model version.

    Example: twin train sft --dataset instruct/ada-quillfeather/v0001 --profile cpu-tiny
    """
    return _run("sft", dataset, profile, resume, max_steps)


@app.command("dpo")
@step("train.dpo")
def dpo(
    dataset: str = typer.Option(..., "--dataset", help="Preference dataset version: preference/<author_slug>/vNNNN."),
    from_ref: str = typer.Option(
        ..., "--from", help="The SFT model version (<author_slug>/vNNNN): start and reference."
    ),
    profile: str = typer.Option(None, "--profile", help=_PROFILE_HELP),
    resume: bool = typer.Option(False, "--resume", help=_RESUME_HELP),
    max_steps: int = typer.Option(0, "--max-steps", min=0, help=_STEPS_HELP),
) -> dict:
    """Direct preference optimization from an SFT model version; registers a candidate model version.

    Example: twin train dpo --dataset preference/ada-quillfeather/v0001 --from ada-quillfeather/v0001
    --profile cpu-tiny
    """
    return _run("dpo", dataset, profile, resume, max_steps, from_ref)


@app.command("profiles")
@step("train.profiles")
def profiles() -> dict:
    """The training profiles available (name, device, base model)."""
    from twin_core.settings import get_settings
    from twin_core.training.profiles import available_profiles, load_profile

    settings = get_settings()
    out = []
    for name in available_profiles(settings):
        p = load_profile(settings, name)
        out.append({"name": p.name, "device": p.device, "base_model": p.base_model, "description": p.description})
    return {"profiles": out}
