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
    from pathlib import Path

    from components.common.tracking import Context
    from components.train import recipes
    from components.train.loop import TrainConfig

    cfg = TrainConfig(max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                      mixed_precision=mixed_precision, replay_data=replay_data,
                      replay_fraction=replay_fraction, seed=seed)
    summary = recipes.tracked("cpt", Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), recipes.cpt,
                              cfg=cfg, init_model=base_model, data=captions.path, out_dir=Path(model.path))
    model.metadata.update({"stage": "cpt", "base_model": base_model, "steps": summary["steps"]})
    for key in ("first_loss", "final_loss", "train_seconds"):
        metrics.log_metric(f"cpt_{key}", summary[key])


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
    from pathlib import Path

    from components.common.tracking import Context
    from components.train import recipes
    from components.train.loop import TrainConfig

    cfg = TrainConfig(max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                      mixed_precision=mixed_precision, replay_data=replay_data,
                      replay_fraction=replay_fraction, seed=seed)
    summary = recipes.tracked("sft", Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), recipes.sft,
                              cfg=cfg, init_model=init_model.path, data=conversations, out_dir=Path(model.path))
    model.metadata.update({"stage": "sft", "steps": summary["steps"]})
    for key in ("first_loss", "final_loss", "train_seconds"):
        metrics.log_metric(f"sft_{key}", summary[key])
