"""KFP component for snapshot: the uncached first step of every pipeline run."""
from typing import NamedTuple

from kfp import dsl

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def snapshot(
    caption_manifest: str,
    sft_conversations: str,
    eval_suite: str,
    base_model: str,
    replay_data: str,
    registered_model_name: str,
    reuse_training: bool,
    mlflow_experiment: str,
    pipeline_run_name: str,
) -> NamedTuple("Outputs", caption_fingerprint=str, sft_fingerprint=str, eval_fingerprint=str,
                base_fingerprint=str, replay_fingerprint=str, champion_version=str, champion_uri=str,
                cache_salt=str):
    """Open the run's MLflow pipeline run and resolve what the run depends on: the content fingerprint of every
    input and the current champion. Never cached.

    Args:
        caption_manifest: the CPT image-caption manifest.
        sft_conversations: the SFT conversations.
        eval_suite: the SEA-HELM evaluation suite (YAML).
        base_model: the base model folder.
        replay_data: the text replay conversations ('' for none).
        registered_model_name: the MLflow Model Registry name whose champion is looked up.
        reuse_training: false makes cache_salt unique to this run, so both training steps run again.
        mlflow_experiment: the MLflow experiment the pipeline run is created in.
        pipeline_run_name: the KFP run's name, given to the MLflow pipeline run.

    Returns:
        caption_fingerprint: content fingerprint of caption_manifest.
        sft_fingerprint: content fingerprint of sft_conversations.
        eval_fingerprint: content fingerprint of eval_suite and of everything it reads.
        base_fingerprint: content fingerprint of base_model.
        replay_fingerprint: content fingerprint of replay_data ('' when none).
        champion_version: the registered version that is champion now ('' when none).
        champion_uri: models:/<name>/<version> of the champion ('' when none).
        cache_salt: '' when earlier training may be reused, else a value new to this run.
    """
    from components.common import tracking
    from components.snapshot.core import cache_salt, fingerprint_inputs, suite_fingerprint

    pipeline_run = tracking.open_pipeline_run(mlflow_experiment, pipeline_run_name)  # first: a failure shows in it
    fingerprints = fingerprint_inputs({"caption": caption_manifest, "sft": sft_conversations,
                                       "base": base_model, "replay": replay_data})
    fingerprints["eval"] = suite_fingerprint(eval_suite)
    version, uri = tracking.champion(registered_model_name)
    salt = cache_salt(reuse_training)
    tracking.tag_run(pipeline_run, {**{f"lineage.{name}_fingerprint": fp for name, fp in fingerprints.items()},
                                    "lineage.champion_version": version, "reuse_training": str(reuse_training)})
    return (fingerprints["caption"], fingerprints["sft"], fingerprints["eval"], fingerprints["base"],
            fingerprints["replay"], version, uri, salt)


@dsl.component(base_image=CPU_IMAGE)
def reference_models(models: dict) -> list:
    """Resolve the reference models by content, like snapshot does for the other inputs. Never cached.

    Args:
        models: {name: URI} of the models every candidate is evaluated beside.

    Returns:
        [{"role", "uri", "fingerprint"}] in name order: the items of the pipeline's reference evaluations.
    """
    from components.snapshot.core import reference_list

    return reference_list(models)
