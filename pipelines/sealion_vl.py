"""The SEA-LION VL pipeline: preflight (`seavl check`) -> snapshot -> (inputs changed, or skip_if_unchanged off)
validate -> CPT -> SFT -> evaluate (x4, + reference models) -> compare -> gate -> register -> (gate passed)
promote, then record; (inputs unchanged since the champion and skip_if_unchanged on) skipped; an exit handler
closes the MLflow pipeline run.

Wiring and Kubernetes settings only; every step's logic lives in components/<step>/core.py. Every step except
preflight, snapshot, reference_models, register, promote, record_run and finish_run is cached by KFP: their inputs are
content fingerprints (from snapshot) and upstream artifacts, never anything that only identifies the run.
"""
from kfp import dsl, kubernetes

from components.common import images
from components.common.component import finish_run, gpu_pod, record_run, skipped
from components.common.images import CREDENTIAL_KEYS, CREDENTIALS_SECRET
from components.common.languages import LANGUAGES
from components.evaluate.component import compare, evaluate
from components.preflight.component import preflight
from components.register.component import gate as gate_step
from components.register.component import promote, register
from components.snapshot.component import reference_models as reference_models_step
from components.snapshot.component import snapshot
from components.train.component import train_cpt, train_sft
from components.validate_data.component import check_data, merge_data, plan_data

VALIDATION_PARALLELISM = 16  # check tasks at a time (KFP fixes a ParallelFor's parallelism at compile time)

# Kubernetes settings KFP fixes at compile time: how long a step may run (then it is failed and retried), how
# often a failed step is retried (training resumes from its checkpoints, evaluation from its stored replies,
# registration finds what it already uploaded), and the scratch volume of the steps that download models.
HOUR = 3600
TIMEOUTS = {"train": 14 * 24 * HOUR, "evaluate": 2 * 24 * HOUR, "check": 12 * HOUR, "merge": 12 * HOUR,
            "register": 6 * HOUR, "preflight": HOUR, "step": 2 * HOUR}
RETRIES = {"gpu": dict(num_retries=3, backoff_duration="5m", backoff_factor=2.0),
           "cpu": dict(num_retries=2, backoff_duration="30s", backoff_factor=2.0)}
# ...except the steps whose failure is a verdict, the same on every attempt, where a retry would only put off the
# stop: the one that judges the data against its expectations (merge; its S3 faults are retried inside it by the
# S3 client) and the checks before the run (preflight).
NOT_RETRIED = ("merge", "preflight")
# Models a step downloads itself land in an emptyDir (writable by the images' non-root user, which a fresh PVC
# is not without an fsGroup KFP cannot set), capped at SCRATCH_SIZE: a 27B model is 54 GB in bf16, and a step
# may hold three. The node's disk must have room for it, and for the artifacts KFP's launcher stages.
SCRATCH = "/scratch"
SCRATCH_SIZE = "600Gi"

# The images tasks run in, when the pipeline is built for a registry and tag (build()): {component image: image}
_IMAGES: dict[str, str] = {}


def _setup(task, cache: bool = True, kind: str = "step", cpu: str = "2", memory: str = "8Gi", pod=None,
           scratch: bool = False):
    """Cluster settings (ignored by kfp.local): the image, credentials from the secret (references only), the KFP
    run id from the pod's label (how a cached-capable step finds its MLflow pipeline run without a run-specific
    input), CPU and memory (requests = limits), for a GPU step the GPUs, tolerations and node selector that its
    `pod` task (gpu_pod) resolved from the run's parameters, a scratch volume, the timeout and retries of its
    `kind`, and whether KFP may serve it from its cache."""
    image = task.component_spec.implementation.container.image
    if image in _IMAGES:
        task.set_container_image(_IMAGES[image])
    kubernetes.use_secret_as_env(task, secret_name=CREDENTIALS_SECRET,
                                 secret_key_to_env={key: key for key in CREDENTIAL_KEYS})
    kubernetes.use_field_path_as_env(task, env_name="KFP_RUN_ID", field_path="metadata.labels['pipeline/runid']")
    if pod is not None:
        cpu, memory = pod.outputs["cpu"], pod.outputs["memory"]
        task.set_accelerator_type(pod.outputs["gpu_resource"]).set_accelerator_limit(pod.outputs["gpus"])
        kubernetes.add_toleration_json(task, toleration_json=pod.outputs["tolerations"])
        kubernetes.add_node_selector_json(task, node_selector_json=pod.outputs["node_selector"])
        task.after(pod)   # the settings are placeholders; kfp.local needs the order spelt out
    task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)
    if scratch:
        kubernetes.empty_dir_mount(task, volume_name="scratch", mount_path=SCRATCH, size_limit=SCRATCH_SIZE)
        task.set_env_variable("SEAVL_CACHE", f"{SCRATCH}/cache")
    kubernetes.set_timeout(task, TIMEOUTS.get(kind, TIMEOUTS["step"]))
    if kind not in NOT_RETRIED:
        retries = RETRIES["gpu" if kind in ("train", "evaluate") else "cpu"]
        # Argo counts backoff_max_duration from the first attempt: it must outlast every attempt's timeout
        limit = (retries["num_retries"] + 1) * TIMEOUTS.get(kind, TIMEOUTS["step"])
        task.set_retry(**retries, backoff_max_duration=f"{limit}s")
    task.set_caching_options(cache)
    return task


def _validate(kind: str, input_uri, fingerprint, languages, settings, groups, eval_data="", eval_fingerprint=""):
    """plan -> check each group of units in parallel -> merge (dedupe, dataset expectations, curated output)."""
    planned = _setup(plan_data(input_uri=input_uri, input_fingerprint=fingerprint, kind=kind, languages=languages,
                               settings=settings, groups=groups)).set_display_name(f"plan-{kind}")
    with dsl.ParallelFor(planned.output, parallelism=VALIDATION_PARALLELISM) as group:
        checked = _setup(check_data(group=group), kind="check", cpu="4", memory="16Gi")
        checked.set_display_name(f"check-{kind}")
    return _setup(merge_data(input_uri=input_uri, eval_data=eval_data, eval_fingerprint=eval_fingerprint,
                             work=dsl.Collected(checked.outputs["work"])), kind="merge", memory="32Gi"
                  ).set_display_name(f"merge-{kind}")


def _sealion_vl(
    caption_manifest: str = "s3://sealion-vl/data/captions/manifest.parquet",
    sft_conversations: str = "s3://sealion-vl/data/mammoth-vl/sft.jsonl",
    eval_suite: str = "s3://sealion-vl/eval/seahelm/suite.yaml",
    base_model: str = "s3://sealion-vl/models/gemma-sea-lion-v4-27b-it",
    reference_models: dict = {"gemma-3-27b-it": "s3://sealion-vl/models/gemma-3-27b-it"},  # noqa: B006
    registered_model_name: str = "gemma-sea-lion-v4-vl",
    languages: str = ",".join(LANGUAGES),
    caption_validation: dict = {},  # noqa: B006 (KFP reads the default; it is never mutated)
    sft_validation: dict = {},  # noqa: B006
    validation_groups: int = 64,
    cpt_training: dict = {},  # noqa: B006
    sft_training: dict = {},  # noqa: B006
    replay_data: str = "",
    checkpoint_root: str = "s3://sealion-vl/checkpoints",
    train_gpus: int = 8,
    train_nodes: int = 1,
    train_node_selector: dict = {},  # noqa: B006
    train_cpu: str = "32",
    train_memory: str = "400Gi",
    gpu_resource: str = "nvidia.com/gpu",
    gpu_tolerations: list = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],  # noqa: B006
    reuse_training: bool = True,
    eval_response_cache: str = "s3://sealion-vl/eval-responses",
    eval_gpus: int = 1,
    eval_node_selector: dict = {},  # noqa: B006
    eval_cpu: str = "16",
    eval_memory: str = "160Gi",
    eval_max_new_tokens: int = 0,
    eval_backend: str = "auto",
    gate: dict = {},  # noqa: B006
    skip_if_unchanged: bool = False,
    mlflow_experiment: str = "sealion-vl",
    git_commit: str = "unknown",
):
    """Train a Gemma-3 VLM for Southeast Asia in two stages, evaluate it beside its base, register it.

    Args:
        caption_manifest: CPT image-caption pairs: a JSONL/Parquet manifest (image paths relative to it) or a folder
            of them, or a folder of WebDataset .tar shards (img2dataset); local or s3://.
        sft_conversations: SFT conversations (messages format or MAmmoTH-VL `conversations`), JSONL or Parquet.
        eval_suite: the SEA-HELM evaluation suite, a YAML file naming each task's data in its public schema
            (components/evaluate/seahelm/suite.py); its images are also kept out of the CPT captions.
        base_model: the starting model, a save_pretrained folder (Gemma-SEA-LION-v4-IT in production).
        reference_models: {name: URI} of models every candidate is evaluated beside (save_pretrained folders);
            each is scored once per suite and model content, then reused from KFP's cache. The release's other
            reference, Gemma-SEA-LION-v4-27B-IT, is the base model (role `base`), so it is not listed twice.
        registered_model_name: MLflow Model Registry name; the gate moves its `champion` alias.
        languages: comma-separated ISO 639-1 codes that training captions and conversations may be in.
        caption_validation: settings of caption curation, e.g. {"min_sea_score": 0.3, "max_caption_chars": 1000}
            (every key of ValidateConfig in components/validate_data/core.py).
        sft_validation: settings of SFT validation, e.g. {"sample_size": 540000, "mixture": "a=0.5,b=0.5"}.
        validation_groups: how many groups the inputs are split into, each checked by its own task.
        cpt_training: settings of continued pre-training (stage 1), e.g. {"max_steps": 20000, "batch_size": 8,
            "learning_rate": 2e-5, "mixed_precision": "bf16", "activation_checkpointing": true, "checkpoint_every":
            500, "replay_fraction": 0.1}: every key of TrainConfig (components/train/loop.py).
        sft_training: settings of supervised fine-tuning (stage 2), the same keys.
        replay_data: text-only conversations mixed into both stages to keep the base's text ability ('' = none);
            each stage's `replay_fraction` says how many.
        checkpoint_root: where training checkpoints go (s3:// on a cluster, so that a retried or preempted step
            resumes); '' for none.
        train_gpus: GPUs per node of a training step: one process each, the model sharded across all (FSDP2).
        train_nodes: nodes per training step. 1: the step's pod trains on its own GPUs. More: the step submits a
            Kubeflow Trainer TrainJob (runtime torch-distributed) of that many nodes, requests no GPU itself, and
            waits for it; the pipeline root and checkpoint_root must then be on S3.
        train_node_selector: node labels the training pods must match, e.g. {"nvidia.com/gpu.product":
            "NVIDIA-H100-80GB-HBM3"} to choose the accelerator type.
        train_cpu: CPU cores a training pod requests (and is limited to).
        train_memory: memory a training pod requests (and is limited to), e.g. "400Gi".
        gpu_resource: the Kubernetes resource GPU steps request, e.g. "nvidia.com/gpu" or "amd.com/gpu".
        gpu_tolerations: tolerations of the GPU steps' pods (Kubernetes toleration objects), matching the taints
            of the GPU nodes.
        reuse_training: reuse both trainings from KFP's cache when their inputs are unchanged; false trains again.
        eval_response_cache: where evaluation replies are kept as they are generated, so that a retried
            evaluation resumes by item id ('' = none).
        eval_gpus: GPUs per evaluation step; the model is spread over them (bf16) when it does not fit one.
        eval_node_selector: node labels the evaluation pods must match (e.g. the GPU product).
        eval_cpu: CPU cores an evaluation pod requests (and is limited to).
        eval_memory: memory an evaluation pod requests (and is limited to); a model is read through it.
        eval_max_new_tokens: 0 generates up to SEA-HELM's limits; > 0 caps replies (a smoke run, marked in the report).
        eval_backend: how evaluation generates: auto (vLLM where the GPU image has it), transformers or vllm.
        gate: the promotion gate's thresholds against the base and the champion ({} = the release's), e.g.
            {"base": {"captioning_gain": 0.0, "text_regression": 1.0, "vqa_regression": 3.0, "language_floor": 5.0},
            "champion": {...}}: every key of GateConfig (components/register/core.py).
        skip_if_unchanged: train, evaluate and register nothing when the training fingerprint (the inputs' content
            and the curation and training settings) equals the champion's; `seavl schedule` turns it on.
        mlflow_experiment: MLflow experiment of the pipeline run.
        git_commit: code version recorded as lineage (filled in by `seavl compile` / `seavl run`).
    """
    with dsl.ExitHandler(_setup(finish_run(), cache=False), name="tracked-run"):
        # `seavl check` in the cluster, with the pods' credentials: a path or a fit that would fail stops the run
        # here, in minutes, before anything else starts and before a GPU is requested
        checked = _setup(preflight(caption_manifest=caption_manifest, sft_conversations=sft_conversations,
                                   eval_suite=eval_suite, base_model=base_model, reference_models=reference_models,
                                   replay_data=replay_data, languages=languages,
                                   caption_validation=caption_validation, sft_validation=sft_validation,
                                   validation_groups=validation_groups, cpt_training=cpt_training,
                                   sft_training=sft_training, checkpoint_root=checkpoint_root, train_gpus=train_gpus,
                                   train_nodes=train_nodes, train_node_selector=train_node_selector,
                                   eval_response_cache=eval_response_cache, eval_gpus=eval_gpus,
                                   eval_node_selector=eval_node_selector, eval_max_new_tokens=eval_max_new_tokens,
                                   eval_backend=eval_backend, gate=gate),
                         cache=False, kind="preflight", memory="8Gi")
        snap = _setup(snapshot(caption_manifest=caption_manifest, sft_conversations=sft_conversations,
                               eval_suite=eval_suite, base_model=base_model, replay_data=replay_data,
                               registered_model_name=registered_model_name, reuse_training=reuse_training,
                               skip_if_unchanged=skip_if_unchanged, mlflow_experiment=mlflow_experiment,
                               pipeline_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, languages=languages,
                               caption_validation=caption_validation, sft_validation=sft_validation,
                               cpt_training=cpt_training, sft_training=sft_training,
                               # the other parameters, logged on the MLflow pipeline run (scalars: KFP hands a
                               # dictionary of pipeline parameters over only when its values are not dictionaries)
                               settings={"validation_groups": validation_groups, "checkpoint_root": checkpoint_root,
                                         "train_gpus": train_gpus, "train_nodes": train_nodes,
                                         "eval_response_cache": eval_response_cache, "eval_gpus": eval_gpus,
                                         "eval_max_new_tokens": eval_max_new_tokens, "eval_backend": eval_backend,
                                         "git_commit": git_commit}), cache=False).after(checked)
        fp = snap.outputs
        with dsl.If(fp["skip"] == False, name="train-evaluate-register"):  # noqa: E712 (KFP condition syntax)
            data = _validate("captions", caption_manifest, fp["caption_fingerprint"], languages, caption_validation,
                             validation_groups, eval_suite, fp["eval_fingerprint"])
            chats = _validate("conversations", sft_conversations, fp["sft_fingerprint"], languages, sft_validation,
                              validation_groups)
            # the training step's own pod holds the GPUs on one node, none when it launches a multi-node job
            gpus = dict(gpu_resource=gpu_resource, tolerations=gpu_tolerations)
            train_pod = _setup(gpu_pod(gpus_per_node=train_gpus, nodes=train_nodes, cpu=train_cpu, memory=train_memory,
                                       node_selector=train_node_selector, **gpus)).set_display_name("train-pod")
            eval_settings = dict(gpus_per_node=eval_gpus, nodes=1, cpu=eval_cpu, memory=eval_memory,
                                 node_selector=eval_node_selector, **gpus)
            eval_pod = _setup(gpu_pod(**eval_settings)).set_display_name("evaluate-pod")
            shared = dict(replay_data=replay_data, replay_fingerprint=fp["replay_fingerprint"],
                          checkpoint_root=checkpoint_root, gpus=train_gpus, nodes=train_nodes,
                          node_selector=train_node_selector, cache_salt=fp["cache_salt"])
            training = dict(kind="train", pod=train_pod, scratch=True)
            cpt = _setup(train_cpt(base_model=base_model, base_fingerprint=fp["base_fingerprint"],
                                   captions=data.outputs["curated"], training=cpt_training, **shared), **training)
            sft = _setup(train_sft(init_model=cpt.outputs["model"], conversations=chats.outputs["curated"],
                                   training=sft_training, **shared), **training)
            for task in (cpt, sft):
                # /dev/shm is 64 MB in a pod: NCCL between the GPUs and DataLoader workers need more
                kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                                           size_limit="64Gi")
            models = {"base": dict(model_uri=base_model, model_fingerprint=fp["base_fingerprint"]),
                      "cpt": dict(model=cpt.outputs["model"]), "candidate": dict(model=sft.outputs["model"]),
                      "champion": dict(model_uri=fp["champion_uri"])}
            scoring = dict(eval_suite=eval_suite, eval_fingerprint=fp["eval_fingerprint"],
                           response_cache=eval_response_cache, gpus=eval_gpus, max_new_tokens=eval_max_new_tokens,
                           backend=eval_backend)
            evaluating = dict(kind="evaluate", pod=eval_pod, scratch=True)
            evals = {role: _setup(evaluate(role=role, **scoring, **model), **evaluating
                                  ).set_display_name(f"evaluate-{role}")
                     for role, model in models.items()}
            references = _setup(reference_models_step(models=reference_models), cache=False)
            with dsl.ParallelFor(references.output, parallelism=2) as ref:
                # a loop's tasks see run parameters only through task inputs: each iteration resolves its own pod
                ref_pod = _setup(gpu_pod(**eval_settings)).set_display_name("evaluate-pod")
                refs = _setup(evaluate(role=ref.role, model_uri=ref.uri, model_fingerprint=ref.fingerprint,
                                       **scoring), kind="evaluate", pod=ref_pod, scratch=True)
                refs.set_display_name("evaluate-reference")
            side_by_side = _setup(compare(**{role: task.outputs["scores"] for role, task in evals.items()},
                                          references=dsl.Collected(refs.outputs["scores"])))
            verdict = _setup(gate_step(scores=side_by_side.outputs["scores"], settings=gate))
            lineage = {"data_fingerprint": data.outputs["data_fingerprint"], "base_model": base_model,
                       "base_fingerprint": fp["base_fingerprint"], "git_commit": git_commit,
                       "training_fingerprint": fp["training_fingerprint"], "config_hash": fp["config_hash"]}
            training_data = {"captions_uri": caption_manifest, "captions_rows": data.outputs["rows"],
                             "captions_fingerprint": data.outputs["data_fingerprint"],
                             "conversations_uri": sft_conversations, "conversations_rows": chats.outputs["rows"],
                             "conversations_fingerprint": chats.outputs["data_fingerprint"]}
            reg = _setup(register(candidate=sft.outputs["model"], scores=side_by_side.outputs["scores"],
                                  promote=verdict.outputs["Output"], gate_reasons=verdict.outputs["reasons"],
                                  registered_model_name=registered_model_name, lineage=lineage,
                                  training_data=training_data), cache=False, kind="register", memory="16Gi",
                         scratch=True)
            with dsl.If(verdict.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
                _setup(promote(registered_model_name=registered_model_name, version=reg.output), cache=False)
            tracked = [data, chats, cpt, sft, *evals.values(), side_by_side]
            _setup(record_run(step_runs=[t.outputs["mlflow_run_id"] for t in tracked],
                              reference_runs=dsl.Collected(refs.outputs["mlflow_run_id"])), cache=False)
        with dsl.Else(name="unchanged-since-champion"):
            _setup(skipped(reason=fp["skip_reason"]), cache=False)


def build(image_registry: str | None = None, image_tag: str | None = None, pipeline_root: str | None = None):
    """The pipeline, its tasks' images in `image_registry` with `image_tag` (set per task with
    set_container_image) and its default pipeline root (e.g. s3://sealion-vl/pipeline-root, so that models move
    through S3, not KFP's default store), as `seavl compile` and `seavl submit` build it."""
    global _IMAGES
    if image_registry or image_tag:
        _IMAGES = {image: images.retag(image, image_tag or image.rpartition(":")[2], image_registry)
                   for image in (images.CPU_IMAGE, images.GPU_IMAGE)}
    try:
        return dsl.pipeline(name="sealion-vl", pipeline_root=pipeline_root,
                            description="Continued pre-training and SFT of a Gemma-3 vision-language model for "
                            "Southeast Asia, evaluated against its base and registered in MLflow.")(_sealion_vl)
    finally:
        _IMAGES = {}


sealion_vl = build()
