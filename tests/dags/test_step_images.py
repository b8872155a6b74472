"""Every DAG step runs in an image that installs the pyproject extras its `twin` command needs.

For each pod task of each DAG (kubernetes mode), the `twin` commands it runs and their pod profiles: a plain
task's own arguments and profile; a mapped task's from the DAG's own planning task, called on sample
inputs (every training profile of configs/training, and every pod profile the evaluation form offers or a
candidate's training brings). The image is the one the factory gives the pod (configs/execution.yaml), and
its extras are read from `pip install ".[...]"` in images/<image>/Dockerfile, with the extras they include
(pyproject.toml). A new step, a new command group or a new extra fails here until an image carries it.

Runs in the Airflow environment (no twin_core): the command group -> extras table below is the contract,
checked against pyproject.toml's extras, the `twin` CLI's groups and the commands the DAGs really run.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
PROJECT = PYPROJECT["project"]["name"]
# What each `twin` command group imports beyond the base dependencies, as pyproject.toml's extras.
COMMAND_EXTRAS = {
    "warehouse": set(),  # the stores: base dependencies
    "etl": {"etl"},  # newspaper4k, selenium (the crawlers)
    "validate": {"etl"},  # great-expectations, pandas
    "features": {"features"},  # sentence-transformers, the packaged embedding model
    "datasets": {"etl", "features", "llm", "data"},  # great-expectations checks, embeddings, LLM generation, Parquet
    "monitor": {"monitor", "features"},  # evidently, query embeddings
    "train": {"train"},  # peft, trl, datasets, comet-ml
    "evaluate": {"evaluate"},  # rouge-score, scikit-learn, jinja2, comet-ml
    "deploy": {"evaluate"},  # the KServe SDK client (canary, watch); the analysis' style and groundedness
}
SAMPLE_AUTHOR, SAMPLE_MODEL = "Ada Quillfeather", "ada-q/v0003"
SAMPLE_FORM = {"instruct": "instruct/ada-q/v0002", "preference": "preference/ada-q/v0001"}


def extras_closure(names: set[str]) -> set[str]:
    """``names`` and the extras they include (``twin-core[llm,features]`` inside an extra)."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for req in EXTRAS[name]:
            match = re.fullmatch(rf"{re.escape(PROJECT)}\[([^\]]+)\]", req.strip())
            if match:
                todo += [x.strip() for x in match.group(1).split(",")]
    return found


def image_extras(image: str) -> set[str]:
    """The extras images/<image>/Dockerfile installs (``pip install ".[a,b]"``), with those they include."""
    dockerfile = (REPO_ROOT / "images" / image / "Dockerfile").read_text()
    installs = re.findall(r'pip install "\.\[([^\]]+)\]"', dockerfile)
    assert installs, f"images/{image}/Dockerfile installs no twin_core extras"
    return extras_closure({x.strip() for group in installs for x in group.split(",")})


def cli_groups() -> set[str]:
    """The `twin` command groups and single commands (src/twin_core/cli/main.py)."""
    main = (REPO_ROOT / "src" / "twin_core" / "cli" / "main.py").read_text()
    return set(re.findall(r'add_typer\(\s*\w+\.app,\s*name="([\w-]+)"', main)) | set(
        re.findall(r'app\.command\(\s*"([\w-]+)"', main)
    )


def _plans(dag: Any, training_pods: dict[str, str]) -> dict[str, tuple[str, list[Any]]]:
    """Mapped task -> (its planning task, the planner's output on sample inputs)."""
    call = {t.task_id: getattr(t, "python_callable", None) for t in dag.tasks}
    if dag.dag_id == "twin_etl":
        form = {"links": ["https://example.com/post"], "user_full_name": SAMPLE_AUTHOR}
        return {"crawl": ("plan_crawls", call["plan_crawls"](form))}
    if dag.dag_id == "twin_features":
        return {"featurize_author": ("plan_authors", call["plan_authors"]({"authors": [SAMPLE_AUTHOR]}, {}))}
    if dag.dag_id == "twin_datasets":
        return {"build_author": ("plan_builds", call["plan_builds"]({"authors": [SAMPLE_AUTHOR]}, {}))}
    if dag.dag_id == "twin_training":
        sft, dpo = [], []
        for profile in training_pods:
            runs = call["plan_training"]({**SAMPLE_FORM, "profile": profile})
            sft += call["plan_sft"](runs)
            dpo += call["plan_dpo"](runs, [{"model": SAMPLE_MODEL}])
        return {"train_sft": ("plan_sft", sft), "train_dpo": ("plan_dpo", dpo)}
    if dag.dag_id == "twin_evaluation":
        plan, evaluate = call["plan_evaluation"], []
        for pod in dag.params.get_param("pod_profile").schema["enum"]:  # a manual run: the form's choice
            evaluate += plan({"models": SAMPLE_MODEL, "pod_profile": pod})
        for pod in set(training_pods.values()):  # a candidate: the pod profile that trained it
            event = SimpleNamespace(extra={"models": [SAMPLE_MODEL], "pod_profiles": {SAMPLE_MODEL: pod}})
            evaluate += plan({}, triggering_asset_events={"twin://models/candidate": [event]})
        canary = call["plan_canary"]([SAMPLE_MODEL], {})
        watch = call["plan_watch"]([{"model": {"ref": SAMPLE_MODEL}}], {})
        return {
            "evaluate": ("plan_evaluation", evaluate),
            "canary": ("plan_canary", canary),
            "watch": ("plan_watch", watch),
        }
    return {}  # a DAG without mapped pod tasks


def training_pod_profiles() -> dict[str, str]:
    """Every training profile of configs/training -> the pod profile its run plans (twin_ops.config)."""
    from twin_ops.config import training_pod_profile

    files = sorted((REPO_ROOT / "configs" / "training").glob("*.yaml"))
    names = [f.stem for f in files if "name" in (yaml.safe_load(f.read_text()) or {})]  # not accelerate-*.yaml
    assert {"cpu-tiny", "gpu-8b", "gpu-70b"} <= set(names)
    return {name: training_pod_profile(name) for name in names}


def step_commands(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, list[str]]]:
    """(dag, task, image, twin arguments) of every pod a DAG step can start."""
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    training_pods = training_pod_profiles()
    steps = []
    for dag in bag.dags.values():
        plans = _plans(dag, training_pods)
        mapped = set()
        for task in dag.tasks:
            cls = getattr(task, "operator_class", type(task))
            if isinstance(task, KubernetesPodOperator):
                steps.append((dag.dag_id, task.task_id, task.image, list(task.arguments)))
            elif isinstance(cls, type) and issubclass(cls, KubernetesPodOperator):
                mapped.add(task.task_id)
                assert task.task_id in plans, f"{dag.dag_id}.{task.task_id}: call its planning task in _plans"
                planner, instances = plans[task.task_id]
                assert planner in task.upstream_task_ids and instances, (dag.dag_id, task.task_id)
                base = {k: v for k, v in task.partial_kwargs.items() if k != "task_id"}
                for instance in instances:
                    kwargs = instance if isinstance(instance, dict) else {"arguments": instance}
                    op = cls(task_id=task.task_id, **{**base, **kwargs})  # the pod this instance starts
                    steps.append((dag.dag_id, task.task_id, op.image, list(kwargs["arguments"])))
        assert mapped == set(plans), dag.dag_id  # no stale entry in _plans either
    return steps


def image_name(image: str) -> str:
    """ghcr.io/llm-twin/twin-core:0.1.0 -> twin-core (images/<name>/Dockerfile)."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


def test_every_step_runs_in_an_image_with_the_extras_of_its_command(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = step_commands(monkeypatch)
    missing = []
    for dag_id, task_id, image, arguments in steps:
        lacking = extras_closure(COMMAND_EXTRAS[arguments[0]]) - image_extras(image_name(image))
        if lacking:
            missing.append(f"{dag_id}.{task_id}: `twin {arguments[0]}` in {image_name(image)} lacks {sorted(lacking)}")
    assert missing == []
    # the derivation reaches the pods of the mapped steps: evaluate in both images (its training's pod
    # profile), the rollout steps in twin-core, every training profile in twin-trainer
    ran = {(task_id, image_name(image)) for _, task_id, image, _ in steps}
    assert {
        ("evaluate", "twin-core"),
        ("evaluate", "twin-trainer"),
        ("canary", "twin-core"),
        ("watch", "twin-core"),
    } <= ran
    assert {image for task_id, image in ran if task_id in ("train_sft", "train_dpo")} == {"twin-trainer"}


def test_the_command_table_is_the_dags_commands_and_pyprojects_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly the command groups the DAG steps run (each a real `twin` group), each with real extras."""
    groups = {arguments[0] for _, _, _, arguments in step_commands(monkeypatch)}
    assert set(COMMAND_EXTRAS) == groups
    assert groups <= cli_groups()
    assert set().union(*COMMAND_EXTRAS.values()) <= set(EXTRAS)


def test_dockerfile_extras_are_read_as_pip_installs_them() -> None:
    """The reading above: the images' extras with the ones they include; an unknown extra is a KeyError."""
    assert image_extras("twin-core") == {"etl", "features", "llm", "data", "monitor", "evaluate"}
    assert image_extras("twin-trainer") == {"train", "evaluate", "llm", "features", "data"}
    assert image_extras("twin-serving") == {"serve", "llm", "features"}
    assert extras_closure({"all"}) == set(EXTRAS) - {"dev"}
