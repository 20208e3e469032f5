"""KFP components for the two training stages: artifact paths in, recipe call, outputs out."""
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE)
def train_cpt(
    base_model: str,
    captions: Input[Dataset],
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    mixed_precision: str,
    replay_data: str,
    replay_fraction: float,
    seed: int,
    mlflow_experiment: str,
    pipeline_run_id: str,
    pipeline_run_name: str,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Stage 1: continued pre-training on curated image-caption pairs."""
    from components.common.tracking import Context
    from components.train.recipes import run_stage

    summary = run_stage("cpt", Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), base_model,
                        captions.path, model.path, max_steps=max_steps, batch_size=batch_size,
                        learning_rate=learning_rate, mixed_precision=mixed_precision, replay_data=replay_data,
                        replay_fraction=replay_fraction, seed=seed)
    model.metadata.update({"stage": "cpt", "base_model": base_model, "steps": summary["steps"]})
    for key, value in summary["final"].items():
        metrics.log_metric(key.replace("/", "_"), value)


@dsl.component(base_image=GPU_IMAGE)
def train_sft(
    init_model: Input[Model],
    conversations: str,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    mixed_precision: str,
    replay_data: str,
    replay_fraction: float,
    seed: int,
    mlflow_experiment: str,
    pipeline_run_id: str,
    pipeline_run_name: str,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Stage 2: supervised fine-tuning on instruction conversations, from the CPT model."""
    from components.common.tracking import Context
    from components.train.recipes import run_stage

    summary = run_stage("sft", Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), init_model.path,
                        conversations, model.path, max_steps=max_steps, batch_size=batch_size,
                        learning_rate=learning_rate, mixed_precision=mixed_precision, replay_data=replay_data,
                        replay_fraction=replay_fraction, seed=seed)
    model.metadata.update({"stage": "sft", "steps": summary["steps"]})
    for key, value in summary["final"].items():
        metrics.log_metric(key.replace("/", "_"), value)
