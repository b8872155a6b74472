"""twin_training: scheduled on the instruct Asset, SFT then DPO as GPU-profile pods (node pool, toleration,
nvidia.com/gpu, memory-backed /dev/shm, ephemeral scratch volume), emits the candidate Asset; and it runs
locally end to end with dag.test (TWIN_EXECUTION=local, a tiny profile, 2 steps).

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, ParamValidationError
from support.dags import asset_condition, edges

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
TWIN_PY = REPO_ROOT / ".venv" / "bin" / "python"
TRAINING_TESTS = REPO_ROOT / "tests" / "training"


DAG_ID = "twin_training"  # the `dag` fixture (conftest.py) parses it in local mode


def test_schedule_graph_and_outlet(dag) -> None:
    assert "twin://datasets/instruct" in asset_condition(dag)
    assert edges(dag) == {
        "plan_training": ["check_candidate", "plan_dpo", "plan_sft"],
        "plan_sft": ["train_sft"],
        "train_sft": ["check_candidate", "plan_dpo"],
        "plan_dpo": ["train_dpo"],
        "train_dpo": ["check_candidate"],
        "check_candidate": [],
    }
    assert {a.uri for a in dag.get_task("check_candidate").outlets} == {"twin://models/candidate"}
    assert dag.params["profile"] == "cpu-tiny"  # local mode
    assert "profile" not in dag.get_task("train_sft").partial_kwargs  # the run chooses it (plan_sft)


INSTRUCT_EVENT = {
    "versions": {
        "ada-q": {"instruct": "instruct/ada-q/v0002", "preference": "preference/ada-q/v0001"},
        "bo": {"instruct": "instruct/bo/v0001", "preference": None},
    }
}


def test_plans_from_asset_events_and_form(dag) -> None:
    plan = dag.get_task("plan_training").python_callable
    event = SimpleNamespace(extra=INSTRUCT_EVENT)
    runs = plan({"profile": "cpu-tiny", "max_steps": 0}, triggering_asset_events={"twin://datasets/instruct": [event]})
    assert [(r["slug"], r["instruct"], r["preference"], r["pod_profile"]) for r in runs] == [
        ("ada-q", "instruct/ada-q/v0002", "preference/ada-q/v0001", "cpu-train"),
        ("bo", "instruct/bo/v0001", None, "cpu-train"),
    ]
    assert runs[0]["args"] == ["--profile", "cpu-tiny", "--resume"]
    sft = dag.get_task("plan_sft").python_callable(runs)
    assert sft[0] == {
        "arguments": ["train", "sft", "--dataset", "instruct/ada-q/v0002", "--profile", "cpu-tiny", "--resume"],
        "profile": "cpu-train",
    }
    dpo = dag.get_task("plan_dpo").python_callable(runs, [{"model": "ada-q/v0003"}, {"model": "bo/v0001"}])
    assert dpo == [
        {"arguments": ["train", "dpo", "--dataset", "preference/ada-q/v0001", "--from", "ada-q/v0003",
                       "--profile", "cpu-tiny", "--resume"], "profile": "cpu-train"},
    ]  # fmt: skip
    form = plan({"instruct": "instruct/ada-q/v0009", "preference": "", "profile": "gpu-70b", "max_steps": 2})
    assert form == [
        {"slug": "ada-q", "instruct": "instruct/ada-q/v0009", "preference": None,
         "args": ["--profile", "gpu-70b", "--resume", "--max-steps", "2"], "pod_profile": "gpu-multi"},
    ]  # fmt: skip
    assert plan({"profile": "cpu-tiny", "max_steps": 0}) == []


@pytest.mark.parametrize("kind", ["instruct", "preference"])
def test_the_form_takes_dataset_versions(dag, kind: str) -> None:
    for value in ("", f"{kind}/ada-q/v0002", f"{kind}/bo/v10000"):
        assert dag.params.get_param(kind).resolve(value) == value


@pytest.mark.parametrize("kind", ["instruct", "preference"])
@pytest.mark.parametrize("value", ["{kind}-ada", "ada-q/v0002", "{kind}/ada-q", "{kind}/ada-q/v2", "{kind}/Ada/v0001",
                                   "{kind}/ada-q/v0002/", " {kind}/ada-q/v0002", "{other}/ada-q/v0002"])  # fmt: skip
def test_the_form_refuses_what_is_not_a_dataset_version_of_its_kind(dag, kind: str, value: str) -> None:
    other = "preference" if kind == "instruct" else "instruct"
    with pytest.raises(ParamValidationError):
        dag.params.get_param(kind).resolve(value.format(kind=kind, other=other))


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"instruct": "instruct-ada"}, "instruct 'instruct-ada': expected instruct/<author_slug>/vNNNN"),  # IndexError
        ({"instruct": "ada-q/v0002"}, "instruct 'ada-q/v0002': expected"),  # was slug v0002, failed in the GPU pod
        ({"instruct": "instruct/ada-q/v0002", "preference": "instruct/ada-q/v0002"},
         "preference 'instruct/ada-q/v0002': expected preference/<author_slug>/vNNNN"),
        ({"preference": "preference/ada-q/v0001"}, "without instruct: DPO starts from this run's SFT model"),  # ignored
        ({"instruct": "instruct/ada-q/v0002", "preference": "preference/bo/v0001"},  # DPO of bo from ada-q's SFT
         "preference preference/bo/v0001 is bo's, instruct instruct/ada-q/v0002 is ada-q's"),
    ],
)  # fmt: skip
def test_bad_form_datasets_fail_the_plan_before_any_pod(dag, form: dict, message: str) -> None:
    plan = dag.get_task("plan_training").python_callable
    with pytest.raises(AirflowFailException, match=message):
        plan({"profile": "cpu-tiny", "max_steps": 0, **form})


def test_a_run_with_a_lone_preference_fails_once_before_any_pod(dag, run_dag) -> None:
    """dag.test: the form refuses a malformed version; a preference without its instruct fails plan_training
    at once (no retry) and no training pod starts."""
    with pytest.raises(ParamValidationError):
        run_dag(dag, run_conf={"instruct": "instruct-ada"})
    run, states = run_dag(dag, run_conf={"preference": "preference/ada-q/v0001", "profile": "cpu-tiny"})
    assert run.state == "failed"
    [plan] = [ti for ti in run.get_task_instances() if ti.task_id == "plan_training"]
    assert plan.state == "failed" and plan.try_number == 1
    assert {states[(t, -1)] for t in ("plan_sft", "train_sft", "plan_dpo", "train_dpo")} == {"upstream_failed"}


def test_the_form_preference_goes_with_its_authors_instruct(dag) -> None:
    plan = dag.get_task("plan_training").python_callable
    form = {"instruct": "instruct/ada-q/v0002", "preference": "preference/ada-q/v0001", "profile": "cpu-tiny"}
    [run] = plan(form)
    assert (run["slug"], run["instruct"], run["preference"]) == (
        "ada-q",
        "instruct/ada-q/v0002",
        "preference/ada-q/v0001",
    )
    dpo = dag.get_task("plan_dpo").python_callable([run], [{"model": "ada-q/v0003"}])
    assert dpo[0]["arguments"][:6] == ["train", "dpo", "--dataset", "preference/ada-q/v0001", "--from", "ada-q/v0003"]


def test_the_profile_in_the_asset_event_wins_over_the_default(dag, tmp_path: Path, monkeypatch) -> None:
    plan = dag.get_task("plan_training").python_callable
    event = SimpleNamespace(extra={**INSTRUCT_EVENT, "profile": "gpu-70b"})
    runs = plan({"profile": "cpu-tiny", "max_steps": 0}, triggering_asset_events={"twin://datasets/instruct": [event]})
    assert {(r["args"][1], r["pod_profile"]) for r in runs} == {("gpu-70b", "gpu-multi")}
    (tmp_path / "odd.yaml").write_text("execution_profile: huge\n")  # a pod profile execution.yaml lacks
    monkeypatch.setenv("TWIN_TRAINING_PROFILES_DIR", str(tmp_path))
    with pytest.raises(AirflowFailException, match="unknown resource profile 'huge'"):  # before any pod, no retry
        plan({"profile": "cpu-tiny"}, triggering_asset_events={"i": [SimpleNamespace(extra={"profile": "odd"})]})


def test_candidates_are_new_versions_with_their_pod_profile(dag) -> None:
    check = dag.get_task("check_candidate").python_callable
    runs = [{"slug": "ada-q", "pod_profile": "gpu-multi"}, {"slug": "bo", "pod_profile": "gpu-multi"}]
    sft = [{"model": "ada-q/v0003", "stage": "candidate"}, {"model": "bo/v0001", "stage": "production"}]
    dpo = [{"model": "ada-q/v0004", "stage": "candidate"}]
    outlet = SimpleNamespace(extra=None)
    outlets = {a: outlet for a in dag.get_task("check_candidate").outlets}
    extra = check(runs, sft, dpo, outlet_events=outlets)
    # bo's dataset did not change: its training returned the version already in production
    assert extra == {"models": ["ada-q/v0004"], "pod_profiles": {"ada-q/v0004": "gpu-multi"}}
    assert outlet.extra == extra
    with pytest.raises(AirflowSkipException):
        check(runs, [{"model": "bo/v0001", "stage": "production"}], [], outlet_events=outlets)


@pytest.mark.parametrize(("profile", "gpus", "pod_profile"), [("gpu-8b", "1", "gpu"), ("gpu-70b", "4", "gpu-multi")])
def test_the_form_profile_shapes_every_training_pod(
    monkeypatch: pytest.MonkeyPatch, render_pod, profile: str, gpus: str, pod_profile
) -> None:
    """One parse (default gpu-8b); the run's form picks the profile, and the pods follow it."""
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["twin_training"]
    assert dag.params["profile"] == "gpu-8b"
    form = {"instruct": "instruct/ada-q/v0002", "preference": "preference/ada-q/v0001", "profile": profile}
    runs = dag.get_task("plan_training").python_callable(form)
    planned = {
        "train_sft": dag.get_task("plan_sft").python_callable(runs),
        "train_dpo": dag.get_task("plan_dpo").python_callable(runs, [{"model": "ada-q/v0003"}]),
    }
    for task_id, [kwargs] in planned.items():
        manifest = render_pod(dag.get_task(task_id), **kwargs)
        assert manifest["spec"]["containers"][0]["args"] == kwargs["arguments"]
        spec, container = manifest["spec"], manifest["spec"]["containers"][0]
        assert manifest["metadata"]["labels"]["llm-twin/profile"] == pod_profile
        assert container["image"].split("/")[-1].startswith("twin-trainer:")
        assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
        assert spec["nodeSelector"] == {"llm-twin/pool": "gpu"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["dshm"]["emptyDir"]["medium"] == "Memory" and volumes["dshm"]["emptyDir"]["sizeLimit"]
        claim = volumes["scratch"]["ephemeral"]["volumeClaimTemplate"]["spec"]
        assert claim["accessModes"] == ["ReadWriteOnce"] and claim["resources"]["requests"]["storage"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert {"tmp": "/tmp", "dshm": "/dev/shm", "scratch": "/scratch"}.items() <= mounts.items()
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TWIN_HOME"] == "/scratch/twin" and env["HF_HOME"] == "/scratch/hf"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("profile", ["cpu-tiny", "cpu-small", "cpu-unknown"])
def test_cpu_training_profiles_run_on_the_trainer_image_without_a_gpu(
    monkeypatch: pytest.MonkeyPatch, render_pod, profile: str
) -> None:
    """A CPU training profile (kind, a cluster with no GPU pool; an unknown cpu-* name alike) trains in the
    cpu-train pod profile: the trainer image (peft, trl; twin-core has no train extra), CPU requests and
    limits, no GPU, no GPU node pool."""
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["twin_training"]
    form = {"instruct": "instruct/ada-q/v0002", "preference": "preference/ada-q/v0001", "profile": profile}
    runs = dag.get_task("plan_training").python_callable(form)
    assert [r["pod_profile"] for r in runs] == ["cpu-train"]
    planned = {
        "train_sft": dag.get_task("plan_sft").python_callable(runs),
        "train_dpo": dag.get_task("plan_dpo").python_callable(runs, [{"model": "ada-q/v0003"}]),
    }
    for task_id, [kwargs] in planned.items():
        manifest = render_pod(dag.get_task(task_id), **kwargs)
        spec, container = manifest["spec"], manifest["spec"]["containers"][0]
        assert manifest["metadata"]["labels"]["llm-twin/profile"] == "cpu-train"
        assert container["image"] == "ghcr.io/llm-twin/twin-trainer:0.1.0"
        assert container["resources"] == {
            "requests": {"cpu": "2", "memory": "4Gi"},
            "limits": {"cpu": "4", "memory": "8Gi"},
        }
        assert not spec.get("nodeSelector") and not spec.get("tolerations")


def _make_datasets(env: dict[str, str]) -> tuple[str, str]:
    """Tiny instruct and preference versions written by the twin_core environment (its pyarrow)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from training_fixtures import sample_rows, write_dataset;"
        "from twin_core.settings import load_settings;"
        "s = load_settings(); tr, te = sample_rows(4, 2);"
        "print(write_dataset(s, 'instruct', tr, te)); print(write_dataset(s, 'preference', tr, te))"
    )
    out = subprocess.run(
        [str(TWIN_PY), "-c", code, str(TRAINING_TESTS)], env=env, capture_output=True, text=True, check=True
    )
    instruct, preference = out.stdout.split()
    return instruct, preference


def _tiny_random_profile(env: dict[str, str], folder: Path) -> None:
    """tests/training's tiny-random profile (a tiny random Llama, SmolLM2's tokenizer) written into ``folder``:
    this test is about the DAG's wiring, tests/training about what training learns."""
    code = (
        "import sys; from pathlib import Path; sys.path[:0] = sys.argv[1:3];"
        "from training_fixtures import tiny_random_profile;"
        "from twin_core.llm.base_model import resolve_base; from twin_core.settings import load_settings;"
        "tiny_random_profile(Path(sys.argv[3]), Path(resolve_base(load_settings(), 'packaged')))"
    )
    args = [str(TWIN_PY), "-c", code, str(TRAINING_TESTS), str(REPO_ROOT / "tests"), str(folder)]
    subprocess.run(args, env=env, capture_output=True, text=True, check=True)


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_dag_runs_locally(dag, twin_env, run_dag, twin, tmp_path: Path) -> None:
    env = twin_env(
        TWIN_LLM_THREADS="1",
        TWIN_LLM_MODELS_DIR=str(REPO_ROOT / ".pytest_cache" / "d" / "twin-llm-models"),  # converted SmolLM2
        TWIN_TRAINING_PROFILES_DIR=str(tmp_path),
        TWIN_TRAINING_CHECKPOINT_STEPS="1",
        COMET_API_KEY="",
    )
    _tiny_random_profile(env, tmp_path)
    instruct, preference = _make_datasets(env)
    conf = {"instruct": instruct, "preference": preference, "profile": "tiny-random", "max_steps": 2}
    run, states = run_dag(dag, run_conf=conf)
    assert run.state == "success", states
    assert states[("train_sft", 0)] == "success" and states[("train_dpo", 0)] == "success"
    assert states[("check_candidate", -1)] == "success"
    versions = twin(env, "registry", "list")["versions"]
    assert [(v["ref"], v["stage"], v["kind"]) for v in versions] == [
        ("ada-quillfeather/v0001", "candidate", "sft"),
        ("ada-quillfeather/v0002", "candidate", "dpo"),
    ]
    check = next(ti for ti in run.get_task_instances() if ti.task_id == "check_candidate")
    assert check.xcom_pull(task_ids="check_candidate") == {
        "models": ["ada-quillfeather/v0002"],
        "pod_profiles": {"ada-quillfeather/v0002": "cpu"},  # tiny-random's execution_profile
    }


def test_the_form_proposes_the_training_profiles(dag, tmp_path: Path, monkeypatch) -> None:
    """configs/training's run profiles (not the accelerate launcher config) as proposals; another name is
    still taken (a trainer image may carry its own profiles)."""
    param = dag.params.get_param("profile")
    assert param.schema["examples"] == ["cpu-small", "cpu-tiny", "gpu-70b", "gpu-8b", "gpu-small"]
    assert param.resolve("my-profile") == "my-profile"
    from twin_ops.config import training_profiles

    (tmp_path / "mine.yaml").write_text("execution_profile: gpu\n")
    monkeypatch.setenv("TWIN_TRAINING_PROFILES_DIR", str(tmp_path))
    assert training_profiles() == ["mine"]
