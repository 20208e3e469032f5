"""The SEA-LION VL pipeline: validate -> CPT -> SFT -> evaluate -> register -> (gate) promote.

Wiring and Kubernetes settings only; every step's logic lives in components/<step>/core.py.
"""
from kfp import dsl, kubernetes

from components.common.component import finish_run
from components.evaluate.component import evaluate
from components.register.component import gate, promote, register
from components.train.component import train_cpt, train_sft
from components.validate_data.component import validate_data

RUN_ID, RUN_NAME = dsl.PIPELINE_JOB_ID_PLACEHOLDER, dsl.PIPELINE_JOB_NAME_PLACEHOLDER
MLFLOW_SECRET = "seavl-mlflow"  # infra/base/secrets.example.yaml: MLflow URI and S3 credentials


def _on_cluster(task, gpus: int = 0, memory: str = "8Gi"):
    """Cluster settings (ignored by kfp.local): credentials from the secret, resources, GPU placement."""
    kubernetes.use_secret_as_env(task, secret_name=MLFLOW_SECRET, secret_key_to_env={
        "MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL": "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"})
    task.set_memory_request(memory).set_cpu_request("2")
    if gpus:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus)
        kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    task.set_caching_options(False)
    return task


@dsl.pipeline(name="sealion-vl", description="Continued pre-training and SFT of a Gemma-3 vision-language "
              "model for Southeast Asia, evaluated against its base and registered in MLflow.")
def sealion_vl(
    caption_manifest: str = "s3://sealion-vl/data/captions/manifest.parquet",
    sft_conversations: str = "s3://sealion-vl/data/mammoth-vl/sft.jsonl",
    eval_data: str = "s3://sealion-vl/data/eval/demo",
    base_model: str = "s3://sealion-vl/models/gemma-sea-lion-v4-27b-it",
    registered_model_name: str = "gemma-sea-lion-v4-vl",
    languages: str = "en,id,ms,th,vi,tl,zh,ta",
    max_caption_chars: int = 1000,
    cpt_max_steps: int = 800,
    cpt_batch_size: int = 16,
    cpt_learning_rate: float = 2e-3,
    sft_max_steps: int = 300,
    sft_batch_size: int = 16,
    sft_learning_rate: float = 1e-3,
    replay_data: str = "",
    replay_fraction: float = 0.0,
    mixed_precision: str = "no",
    seed: int = 0,
    max_new_tokens: int = 32,
    text_tolerance: float = 2.0,
    caption_tolerance: float = 0.0,
    mlflow_experiment: str = "sealion-vl",
    git_commit: str = "unknown",
):
    """Parameters (shown in the Kubeflow UI):

    caption_manifest: CPT image-caption manifest (JSONL/Parquet, local or s3://); image paths relative to it.
    sft_conversations: SFT conversations (messages format or MAmmoTH-VL `conversations`), JSONL.
    eval_data: folder with held-out captions.jsonl, mc.jsonl and text.jsonl.
    base_model: the starting model, a save_pretrained folder (Gemma-SEA-LION-v4-IT in production).
    registered_model_name: MLflow Model Registry name; the gate moves its `champion` alias.
    languages: comma-separated ISO 639-1 codes the manifest may contain.
    max_caption_chars: longest caption accepted by validation.
    cpt_*/sft_*: optimizer steps, per-device batch size and peak learning rate of each stage.
    replay_data: text-only conversations mixed into both stages to keep the base's text ability ('' = none).
    replay_fraction: replay samples added to each stage, as a fraction of that stage's own samples.
    mixed_precision: "no", "bf16" or "fp16".
    text_tolerance: how far (chrF points) the candidate's text score may fall below the base's and still promote.
    caption_tolerance: how far (CIDEr) its captioning may fall below the base's and still promote.
    git_commit: code version recorded as lineage (filled in by `seavl compile` / `seavl run`).
    """
    run = dict(mlflow_experiment=mlflow_experiment, pipeline_run_id=RUN_ID, pipeline_run_name=RUN_NAME)
    exit_task = finish_run(**run)
    with dsl.ExitHandler(_on_cluster(exit_task), name="tracked-run"):
        data = _on_cluster(validate_data(caption_manifest=caption_manifest, languages=languages,
                                         max_caption_chars=max_caption_chars, **run))
        cpt = _on_cluster(train_cpt(base_model=base_model, captions=data.outputs["curated"], max_steps=cpt_max_steps,
                                    batch_size=cpt_batch_size, learning_rate=cpt_learning_rate,
                                    mixed_precision=mixed_precision, replay_data=replay_data,
                                    replay_fraction=replay_fraction, seed=seed, **run), gpus=1, memory="64Gi")
        sft = _on_cluster(train_sft(init_model=cpt.outputs["model"], conversations=sft_conversations,
                                    max_steps=sft_max_steps, batch_size=sft_batch_size,
                                    learning_rate=sft_learning_rate, mixed_precision=mixed_precision,
                                    replay_data=replay_data, replay_fraction=replay_fraction, seed=seed, **run), gpus=1, memory="64Gi")
        ev = _on_cluster(evaluate(candidate=sft.outputs["model"], cpt_model=cpt.outputs["model"],
                                  base_model=base_model, eval_data=eval_data,
                                  registered_model_name=registered_model_name, max_new_tokens=max_new_tokens,
                                  **run), gpus=1, memory="32Gi")
        verdict = _on_cluster(gate(scores=ev.outputs["scores"], text_tolerance=text_tolerance,
                                   caption_tolerance=caption_tolerance))
        reg = _on_cluster(register(candidate=sft.outputs["model"], scores=ev.outputs["scores"],
                                   promote=verdict.output, registered_model_name=registered_model_name,
                                   data_fingerprint=data.outputs["Output"], base_model=base_model,
                                   git_commit=git_commit, text_tolerance=text_tolerance,
                                   caption_tolerance=caption_tolerance, **run))
        with dsl.If(verdict.output == True, name="gate-passed"):  # noqa: E712 (KFP condition syntax)
            _on_cluster(promote(registered_model_name=registered_model_name, version=reg.output, **run))
