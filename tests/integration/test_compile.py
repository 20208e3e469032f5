"""The compiled pipeline: what a user uploads in the Kubeflow UI."""
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app, git_commit

UNCACHED = {"preflight", "snapshot", "reference-models", "register", "promote", "record-run",  # check, resolve or
            "finish-run", "skipped"}                                                            # record


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "p.yaml"
    result = CliRunner().invoke(app, ["compile", "-o", str(out), "--image-registry", "registry.local/team"])
    assert result.exit_code == 0, result.output
    spec, platform = list(yaml.safe_load_all(out.read_text()))  # pipeline spec + Kubernetes platform spec
    return out, spec, platform


def _tasks(spec) -> dict:
    """Every step of the pipeline, in any DAG (root, exit handler, condition), by task name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return {name: task for name, task in tasks.items()
            if "executorLabel" in spec["components"][task["componentRef"]["name"]]}


def _source(param: dict) -> tuple[str, str]:
    """(producing task, output) of a task input, also when it reaches a condition's DAG as a pipeline channel."""
    if "taskOutputParameter" in param:
        return param["taskOutputParameter"]["producerTask"], param["taskOutputParameter"]["outputParameterKey"]
    producer, _, key = param["componentInputParameter"].removeprefix("pipelinechannel--").partition("-")
    return producer, key


def test_compile_writes_yaml_that_loads_back(compiled):
    out, spec, platform = compiled
    assert "exit-handler-1" in spec["root"]["dag"]["tasks"] and "kubernetes" in platform["platforms"]
    for step in ("snapshot", "plan-data", "check-data", "merge-data", "train-cpt", "train-sft", "evaluate", "compare",
                 "gate", "register", "promote", "record-run", "finish-run"):
        assert f"comp-{step}" in spec["components"]
    # validation fans out: a ParallelFor over the plan's groups, at most 16 check tasks at a time; the reference
    # models are evaluated in a third, two at a time
    loops = [t for comp in spec["components"].values() for t in comp.get("dag", {}).get("tasks", {}).values()
             if "parameterIterator" in t]
    assert sorted(t["iteratorPolicy"]["parallelismLimit"] for t in loops) == [2, 16, 16]
    params = spec["root"]["inputDefinitions"]["parameters"]
    # every parameter a user sees in the UI has a default; the commit is recorded at compile time
    assert all("defaultValue" in p for p in params.values())
    assert params["git_commit"]["defaultValue"] == git_commit() != ""
    assert params["cpt_training"]["parameterType"] == "STRUCT"
    assert params["train_gpus"]["parameterType"] == "NUMBER_INTEGER"
    from kfp import components

    loaded = components.load_component_from_file(str(out))
    assert "caption_manifest" in loaded.component_spec.inputs
    # the images hold kfp and the project: no step pip-installs anything when its pod starts
    assert "pip install" not in out.read_text()


def test_an_unchanged_run_takes_the_skip_branch(compiled):
    """skip_if_unchanged: everything after snapshot sits in a condition on its `skip` output; the other branch
    holds only the `skipped` step, so the KFP UI shows which way a run went."""
    _, spec, _ = compiled
    branches = {}
    for comp in spec["components"].values():
        for task in comp.get("dag", {}).get("tasks", {}).values():
            condition = task.get("triggerPolicy", {}).get("condition", "")
            if "snapshot-skip" in condition:
                inner = spec["components"][task["componentRef"]["name"]]["dag"]["tasks"]
                branches[condition] = (task["taskInfo"]["name"], set(inner))
    taken = "inputs.parameter_values['pipelinechannel--snapshot-skip'] == false"
    assert sorted(branches) == sorted([taken, f"!({taken})"])
    assert branches[f"!({taken})"] == ("unchanged-since-champion", {"skipped"})
    name, trained = branches[taken]
    assert name == "train-evaluate-register"
    assert {"train-cpt", "train-sft", "evaluate", "compare", "gate", "register", "record-run"} <= trained
    assert spec["root"]["inputDefinitions"]["parameters"]["skip_if_unchanged"]["defaultValue"] is False


def test_every_input_is_described(compiled):
    _, spec, _ = compiled
    undescribed = [f"pipeline.{name}" for name, p in spec["root"]["inputDefinitions"]["parameters"].items()
                   if not p.get("description")]
    for comp_name, comp in spec["components"].items():
        if "executorLabel" not in comp:
            continue  # DAGs the compiler makes for ExitHandler/If pass pipeline channels through
        for kind in ("parameters", "artifacts"):
            undescribed += [f"{comp_name}.{name}" for name, p in comp.get("inputDefinitions", {}).get(kind, {}).items()
                            if not p.get("description")]
    assert undescribed == []
    assert "content fingerprint" in spec["components"]["comp-train-cpt"]["inputDefinitions"]["parameters"][
        "base_fingerprint"]["description"]


def test_images_carry_the_version_and_commit(compiled):
    _, spec, _ = compiled
    tag = f"0.1.0-{git_commit()}"
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"registry.local/team/sealion-vl-gpu:{tag}", f"registry.local/team/sealion-vl-cpu:{tag}"}


def test_caching_is_keyed_on_content_never_on_the_run(compiled):
    _, spec, _ = compiled
    tasks = _tasks(spec)
    for name, task in tasks.items():
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        assert cached == (task["componentRef"]["name"].removeprefix("comp-") not in UNCACHED), name
        if cached:  # a run-specific value (run id or name) in a cached task's inputs would defeat the cache
            text = yaml.safe_dump(task["inputs"])
            assert "pipeline_job" not in text and "PIPELINE_JOB" not in text, name
    # the cached steps read content fingerprints from the snapshot step, and the trainings its salt
    cpt = tasks["train-cpt"]["inputs"]["parameters"]
    assert _source(cpt["base_fingerprint"]) == ("snapshot", "base_fingerprint")
    for training in ("train-cpt", "train-sft"):
        assert _source(tasks[training]["inputs"]["parameters"]["cache_salt"]) == ("snapshot", "cache_salt")
    assert tasks["snapshot"]["inputs"]["parameters"]["pipeline_run_name"]["runtimeValue"]["constant"] == \
        "{{$.pipeline_job_name}}"
    # trained models reach their evaluation as artifacts (KFP stages them); base and champion by URI
    evals = {t["taskInfo"]["name"]: t["inputs"] for t in tasks.values() if t["taskInfo"]["name"].startswith("evaluate")}
    assert evals["evaluate-cpt"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "train-cpt"
    assert evals["evaluate-candidate"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "train-sft"
    assert _source(evals["evaluate-base"]["parameters"]["model_fingerprint"]) == ("snapshot", "base_fingerprint")
    assert _source(evals["evaluate-champion"]["parameters"]["model_uri"]) == ("snapshot", "champion_uri")


def test_kubernetes_settings_are_compiled_in(compiled):
    _, spec, platform = compiled
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    cpt = executors["exec-train-cpt"]
    assert cpt["secretAsEnv"][0]["secretName"] == "seavl-mlflow"
    # every step learns its KFP run id from the pod's label, not from an input
    for name, executor in executors.items():
        assert {"name": "KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"} in executor["fieldPathAsEnv"], \
            name
        assert int(executor["activeDeadlineSeconds"]) > 0, name   # every step has a timeout
    assert int(cpt["activeDeadlineSeconds"]) == 14 * 24 * 3600
    # GPUs are run parameters: a gpu_pod task resolves them (KFP hands a GPU count to a pod only as text, and
    # a ParallelFor's tasks see run parameters only through task inputs) - type, count (train_gpus on one node,
    # none when the step launches a multi-node TrainJob), CPU and memory (requests = limits), tolerations and
    # node selectors
    tasks = _tasks(spec)
    assert tasks["gpu-pod"]["taskInfo"]["name"] == "train-pod"
    assert tasks["gpu-pod"]["inputs"]["parameters"]["gpus_per_node"] == {"componentInputParameter":
                                                                           "pipelinechannel--train_gpus"}
    assert tasks["gpu-pod"]["inputs"]["parameters"]["gpu_resource"] == {"componentInputParameter":
                                                                          "pipelinechannel--gpu_resource"}
    resources = spec["deploymentSpec"]["executors"]["exec-train-cpt"]["container"]["resources"]
    pod = "{{$.inputs.parameters['pipelinechannel--%s-%s']}}"
    producer = tasks["train-cpt"]["inputs"]["parameters"]["pipelinechannel--gpu-pod-gpus"]["taskOutputParameter"]
    assert producer == {"outputParameterKey": "gpus", "producerTask": "gpu-pod"}
    assert resources["accelerator"] == {"resourceCount": pod % ("gpu-pod", "gpus"),
                                        "resourceType": pod % ("gpu-pod", "gpu_resource")}
    assert resources["resourceMemoryLimit"] == resources["resourceMemoryRequest"] == pod % ("gpu-pod", "memory")
    assert cpt["tolerations"] == [{"tolerationJson": {"taskOutputParameter": {"outputParameterKey": "tolerations",
                                                                              "producerTask": "gpu-pod"}}}]
    assert cpt["nodeSelector"]["nodeSelectorJson"]["taskOutputParameter"]["producerTask"] == "gpu-pod"
    # the reference evaluations inside the ParallelFor resolve their own pod from the run's parameters
    loop = next(c for n, c in spec["components"].items() if n.startswith("comp-for-loop")
                and "evaluate-5" in c["dag"]["tasks"])
    assert {"pipelinechannel--eval_gpus", "pipelinechannel--gpu_resource", "pipelinechannel--gpu_tolerations"} <= \
        set(loop["inputDefinitions"]["parameters"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["gpu_tolerations"]["defaultValue"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                          "effect": "NoSchedule"}]
    # models land on a scratch volume, writable by the images' non-root user
    for step in ("exec-train-cpt", "exec-train-sft", "exec-evaluate", "exec-register"):
        assert {"volumeName": "scratch", "mountPath": "/scratch", "sizeLimit": "600Gi"} in \
            executors[step]["emptyDirMounts"], step
    # steps retry with backoff (training resumes from checkpoints, evaluation from stored replies); Argo counts
    # the backoff window from the first attempt, so it outlasts every attempt's timeout
    retry = {name: t.get("retryPolicy") for name, t in tasks.items()}
    assert retry["train-cpt"] == {"backoffDuration": "300s", "backoffFactor": 2.0,
                                  "backoffMaxDuration": f"{4 * 14 * 24 * 3600}s", "maxRetryCount": 3}
    verdicts = [name for name in retry if name.startswith("merge-data") or name == "preflight"]
    assert all(policy for name, policy in retry.items() if name not in verdicts)
    # ...but the verdicts: a dataset that fails its expectations, a run that fails its checks, fail the same way on
    # every attempt
    assert len(verdicts) == 3 and all(retry[name] is None for name in verdicts)


def test_the_checks_run_first_and_nothing_else_starts_before_they_pass(compiled):
    """preflight is the first step of the exit handler's DAG; snapshot, which everything else follows, waits for
    it; it gets every parameter that says what the run reads and asks for, and never requests a GPU."""
    _, spec, platform = compiled
    tasks = _tasks(spec)
    assert "dependentTasks" not in tasks["preflight"]
    assert tasks["snapshot"]["dependentTasks"] == ["preflight"]
    handler = next(c["dag"]["tasks"] for c in spec["components"].values() if "preflight" in c.get("dag", {}).get(
        "tasks", {}))
    firsts = [name for name, t in handler.items() if not t.get("dependentTasks")]
    assert firsts == ["preflight"], firsts
    inputs = tasks["preflight"]["inputs"]["parameters"]
    assert {"base_model", "caption_manifest", "sft_conversations", "eval_suite", "reference_models", "cpt_training",
            "sft_training", "train_gpus", "train_nodes", "train_node_selector", "checkpoint_root"} <= set(inputs)
    resources = spec["deploymentSpec"]["executors"]["exec-preflight"]["container"]["resources"]
    assert "accelerator" not in resources and resources["cpuLimit"] == 2


def test_secrets_are_named_never_carried(tmp_path, monkeypatch):
    """Credentials reach pods only through references to the secret: values planted in the environment of the
    compiling machine are nowhere in the YAML."""
    planted = {"AWS_SECRET_ACCESS_KEY": "planted-aws-secret-9f3k", "AWS_ACCESS_KEY_ID": "planted-key-id-7q2",
               "MLFLOW_TRACKING_PASSWORD": "planted-mlflow-pw-5x8", "MLFLOW_TRACKING_TOKEN": "planted-token-1z9",
               "KFP_TOKEN": "planted-kfp-token-3c4"}
    for key, value in planted.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["compile", "-o", str(out), "--pipeline-root", "s3://sealion-vl/root"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert not [v for v in planted.values() if v in text]
    assert "seavl-mlflow" in text and "AWS_SECRET_ACCESS_KEY" in text   # the name and the key, as references
    spec = next(yaml.safe_load_all(text))
    assert spec["defaultPipelineRoot"] == "s3://sealion-vl/root"
    bad = CliRunner().invoke(app, ["compile", "-o", str(out), "--pipeline-root", "sealion-vl/root"])
    assert bad.exit_code == 2 and "must be a URI" in bad.output


def test_run_rejects_unknown_parameters(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("no_such_parameter: 1\n")
    result = CliRunner().invoke(app, ["run", "--config", str(cfg)])
    assert result.exit_code != 0 and "unknown pipeline parameter" in result.output


def test_overrides_are_typed_and_demo_paths_filled(tmp_path):
    from pipelines.cli import DEFAULT_CONFIG, load_arguments

    args = load_arguments(DEFAULT_CONFIG, ["cpt_training.learning_rate=2e-3", "cpt_training.max_steps=5",
                                           "languages=en,th"], tmp_path)
    assert args["cpt_training"]["learning_rate"] == 0.002 and args["cpt_training"]["max_steps"] == 5
    assert args["cpt_training"]["batch_size"] == 16   # the file's other settings of the stage stay
    assert args["languages"] == "en,th"
    assert args["base_model"] == f"{tmp_path}/base-model"
