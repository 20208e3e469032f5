"""KFP components for the two training stages: artifact paths in, recipe call, outputs out.

Both take the content fingerprints of their inputs (from the snapshot step) so that KFP's cache, which keys
on argument values, reuses a trained model exactly when what it was trained from is unchanged, and
`cache_salt`, which the snapshot step makes unique to the run when the pipeline asks to train again.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE)
def train_cpt(
    base_model: str,
    base_fingerprint: str,
    captions: Input[Dataset],
    replay_data: str,
    replay_fingerprint: str,
    replay_fraction: float,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    mixed_precision: str,
    seed: int,
    cache_salt: str,
    model: Output[Model],
    metrics: Output[Metrics],
) -> NamedTuple("Outputs", mlflow_run_id=str):
    """Stage 1: continued pre-training on the curated image-caption pairs, from the base model.

    Args:
        base_model: the starting model, a save_pretrained folder (local or s3://).
        base_fingerprint: content fingerprint of base_model (snapshot step); part of KFP's cache key.
        captions: the curated caption pairs (validate_data: a folder of Parquet files).
        replay_data: text-only conversations (JSONL) mixed in to keep the base's text ability; '' for none.
        replay_fingerprint: content fingerprint of replay_data (snapshot step); part of KFP's cache key.
        replay_fraction: replay samples added, as a fraction of the stage's own samples.
        max_steps: optimizer steps.
        batch_size: samples per device per micro-batch.
        learning_rate: peak learning rate (linear warm-up, then linear decay).
        mixed_precision: 'no', 'bf16' or 'fp16'.
        seed: seed of sampling, replay draws and initialisation.
        cache_salt: '' to let KFP reuse an identical earlier training; a value unique to the run to train again.
        model: the trained model (save_pretrained folder with its processor).
        metrics: first and final loss and wall time, for the Kubeflow UI.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    from pathlib import Path

    from components.common.tracking import tracked_step
    from components.train.recipes import TrainConfig, cpt

    cfg = TrainConfig(max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                      mixed_precision=mixed_precision, replay_data=replay_data, replay_fraction=replay_fraction,
                      seed=seed)
    with tracked_step("cpt") as step:
        result = cpt(base_model, captions.path, Path(model.path), cfg, log_metrics=step.log_metrics)
        step.record(result.logged("cpt", cfg, init_model=base_model, data=captions.uri), kfp_metrics=metrics)
    model.metadata.update({"stage": "cpt", "base_model": base_model, "steps": result.steps})
    return (step.run_id,)


@dsl.component(base_image=GPU_IMAGE)
def train_sft(
    init_model: Input[Model],
    conversations: Input[Dataset],
    replay_data: str,
    replay_fingerprint: str,
    replay_fraction: float,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    mixed_precision: str,
    seed: int,
    cache_salt: str,
    model: Output[Model],
    metrics: Output[Metrics],
) -> NamedTuple("Outputs", mlflow_run_id=str):
    """Stage 2: supervised fine-tuning on instruction conversations, from the CPT model.

    Args:
        init_model: the model to start from (train_cpt).
        conversations: the curated conversations (validate_data: Parquet, the messages format).
        replay_data: text-only conversations (JSONL) mixed in to keep the base's text ability; '' for none.
        replay_fingerprint: content fingerprint of replay_data (snapshot step); part of KFP's cache key.
        replay_fraction: replay samples added, as a fraction of the stage's own samples.
        max_steps: optimizer steps.
        batch_size: samples per device per micro-batch.
        learning_rate: peak learning rate (linear warm-up, then linear decay).
        mixed_precision: 'no', 'bf16' or 'fp16'.
        seed: seed of sampling, replay draws and initialisation.
        cache_salt: '' to let KFP reuse an identical earlier training; a value unique to the run to train again.
        model: the trained model (save_pretrained folder with its processor).
        metrics: first and final loss and wall time, for the Kubeflow UI.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    from pathlib import Path

    from components.common.tracking import tracked_step
    from components.train.recipes import TrainConfig, sft

    cfg = TrainConfig(max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                      mixed_precision=mixed_precision, replay_data=replay_data, replay_fraction=replay_fraction,
                      seed=seed)
    with tracked_step("sft") as step:
        result = sft(init_model.path, conversations.path, Path(model.path), cfg, log_metrics=step.log_metrics)
        step.record(result.logged("sft", cfg, init_model=init_model.uri, data=conversations.uri),
                    kfp_metrics=metrics)
    model.metadata.update({"stage": "sft", "steps": result.steps})
    return (step.run_id,)
