"""KFP components for the two training stages: artifact paths in, recipe launch, outputs out.

Both take the content fingerprints of their inputs (from the snapshot and validation steps) so that KFP's
cache, which keys on argument values, reuses a trained model exactly when what it was trained from is unchanged,
and `cache_salt`, which the snapshot step makes unique to the run when the pipeline asks to train again.

Checkpoints go under `checkpoint_root` (s3:// on a cluster), in a folder named by a hash of everything the
training depends on: a retried or preempted pod finds its own checkpoints there and resumes; another run never
does. They are removed once the model is saved.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train_cpt(
    base_model: str,
    base_fingerprint: str,
    captions: Input[Dataset],
    replay_data: str,
    replay_fingerprint: str,
    training: dict,
    checkpoint_root: str,
    gpus: int,
    nodes: int,
    node_selector: dict,
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
        training: training settings, every key of TrainConfig (components/train/loop.py).
        checkpoint_root: where checkpoints go (local or s3://); '' for none.
        gpus: GPUs per node: one training process each (FSDP2 when more than one in all).
        nodes: 1 to train in this step's pod; more to submit a Kubeflow Trainer TrainJob of that many nodes.
        node_selector: node labels the TrainJob's pods must match (this pod's own are set by the pipeline).
        cache_salt: '' to let KFP reuse an identical earlier training; a value unique to the run to train again.
        model: the trained model (save_pretrained folder, bf16 safetensors, with its processor).
        metrics: first and final loss and wall time, for the Kubeflow UI.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    from components.train.stage import train_stage

    # a multi-node job's pods read the artifacts where KFP keeps them (S3), not through this pod's mounts
    run_id, steps = train_stage("cpt", base_model, base_fingerprint, captions.uri if nodes > 1 else captions.path,
                                captions.metadata.get("fingerprint", captions.uri), replay_data, replay_fingerprint,
                                training, checkpoint_root, gpus, nodes, node_selector, cache_salt, model.path,
                                model.uri, metrics, captions.metadata.get("rows"))
    model.metadata.update({"stage": "cpt", "base_model": base_model, "steps": steps})
    return (run_id,)


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train_sft(
    init_model: Input[Model],
    conversations: Input[Dataset],
    replay_data: str,
    replay_fingerprint: str,
    training: dict,
    checkpoint_root: str,
    gpus: int,
    nodes: int,
    node_selector: dict,
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
        training: training settings, every key of TrainConfig (components/train/loop.py).
        checkpoint_root: where checkpoints go (local or s3://); '' for none.
        gpus: GPUs per node: one training process each (FSDP2 when more than one in all).
        nodes: 1 to train in this step's pod; more to submit a Kubeflow Trainer TrainJob of that many nodes.
        node_selector: node labels the TrainJob's pods must match (this pod's own are set by the pipeline).
        cache_salt: '' to let KFP reuse an identical earlier training; a value unique to the run to train again.
        model: the trained model (save_pretrained folder, bf16 safetensors, with its processor).
        metrics: first and final loss and wall time, for the Kubeflow UI.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    from components.train.stage import train_stage

    remote = nodes > 1   # a multi-node job's pods read the artifacts where KFP keeps them (S3)
    run_id, steps = train_stage("sft", init_model.uri if remote else init_model.path, init_model.uri,
                                conversations.uri if remote else conversations.path,
                                conversations.metadata.get("fingerprint", conversations.uri), replay_data,
                                replay_fingerprint, training, checkpoint_root, gpus, nodes, node_selector, cache_salt,
                                model.path, model.uri, metrics, conversations.metadata.get("rows"))
    model.metadata.update({"stage": "sft", "steps": steps})
    return (run_id,)
