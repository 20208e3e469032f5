"""KFP component for snapshot: the uncached first step of every pipeline run."""
from typing import NamedTuple

from kfp import dsl

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def snapshot(
    caption_manifest: str,
    sft_conversations: str,
    eval_suite: str,
    base_model: str,
    replay_data: str,
    registered_model_name: str,
    reuse_training: bool,
    skip_if_unchanged: bool,
    mlflow_experiment: str,
    pipeline_run_name: str,
    languages: str,
    caption_validation: dict,
    sft_validation: dict,
    cpt_training: dict,
    sft_training: dict,
    settings: dict,
) -> NamedTuple("Outputs", caption_fingerprint=str, sft_fingerprint=str, eval_fingerprint=str,
                base_fingerprint=str, replay_fingerprint=str, champion_version=str, champion_uri=str,
                cache_salt=str, training_fingerprint=str, config_hash=str, skip=bool, skip_reason=str):
    """Open the run's MLflow pipeline run, log the run's parameters there, and resolve what the run depends on:
    the content fingerprint of every input, the current champion, and whether anything changed since it was
    trained. Never cached.

    Args:
        caption_manifest: the CPT image-caption manifest.
        sft_conversations: the SFT conversations.
        eval_suite: the SEA-HELM evaluation suite (YAML).
        base_model: the base model folder.
        replay_data: the text replay conversations ('' for none).
        registered_model_name: the MLflow Model Registry name whose champion is looked up.
        reuse_training: false makes cache_salt unique to this run, so both training steps run again.
        skip_if_unchanged: skip training, evaluation and registration when the training fingerprint equals the
            champion's.
        mlflow_experiment: the MLflow experiment the pipeline run is created in.
        pipeline_run_name: the KFP run's name, given to the MLflow pipeline run.
        languages: the languages captions and conversations may be in.
        caption_validation: the caption curation settings.
        sft_validation: the SFT validation settings.
        cpt_training: the CPT settings.
        sft_training: the SFT settings.
        settings: the pipeline's other parameters, logged and hashed with these.

    Returns:
        caption_fingerprint: content fingerprint of caption_manifest.
        sft_fingerprint: content fingerprint of sft_conversations.
        eval_fingerprint: content fingerprint of eval_suite and of everything it reads.
        base_fingerprint: content fingerprint of base_model.
        replay_fingerprint: content fingerprint of replay_data ('' when none).
        champion_version: the registered version that is champion now ('' when none).
        champion_uri: models:/<name>/<version> of the champion ('' when none).
        cache_salt: '' when earlier training may be reused, else a value new to this run.
        training_fingerprint: what decides the trained weights: the inputs' content, the curation and training
            settings, the training GPUs and the code version.
        config_hash: a hash of every parameter of the run (its configuration).
        skip: true when skip_if_unchanged and the champion was trained from the same training fingerprint.
        skip_reason: why the run trains or skips, in words.
    """
    from components.common import tracking
    from components.snapshot.core import (
        cache_salt,
        config_hash,
        fingerprint_inputs,
        normalized,
        skip_decision,
        suite_fingerprint,
        training_fingerprint,
    )

    pipeline_run = tracking.open_pipeline_run(mlflow_experiment, pipeline_run_name)  # first: a failure shows in it
    parameters = {**settings, "caption_manifest": caption_manifest, "sft_conversations": sft_conversations,
                  "eval_suite": eval_suite, "base_model": base_model, "replay_data": replay_data,
                  "registered_model_name": registered_model_name, "reuse_training": reuse_training,
                  "skip_if_unchanged": skip_if_unchanged, "mlflow_experiment": mlflow_experiment,
                  "languages": languages, "caption_validation": caption_validation,
                  "sft_validation": sft_validation, "cpt_training": cpt_training, "sft_training": sft_training}
    tracking.record_params(pipeline_run, normalized(parameters))
    fingerprints = fingerprint_inputs({"caption": caption_manifest, "sft": sft_conversations,
                                       "base": base_model, "replay": replay_data})
    fingerprints["eval"] = suite_fingerprint(eval_suite)
    # the GPUs set the global batch (batch_size is per GPU), and the code version the training code itself
    training = training_fingerprint(fingerprints, {"languages": languages, "caption_validation": caption_validation,
                                                   "sft_validation": sft_validation, "cpt_training": cpt_training,
                                                   "sft_training": sft_training,
                                                   **{k: settings.get(k, "") for k in ("train_gpus", "train_nodes",
                                                                                       "git_commit")}})
    version, uri = tracking.champion(registered_model_name)
    champion_training = tracking.version_tag(registered_model_name, version, "training_fingerprint") if version else ""
    skip, reason = skip_decision(skip_if_unchanged, training, version, champion_training)
    salt = cache_salt(reuse_training)
    configuration = config_hash(parameters)
    tracking.tag_run(pipeline_run, {**{f"lineage.{name}_fingerprint": fp for name, fp in fingerprints.items()},
                                    "lineage.training_fingerprint": training, "lineage.config_hash": configuration,
                                    "lineage.champion_version": version, "reuse_training": str(reuse_training),
                                    "seavl.skip": str(skip).lower(), "seavl.skip_reason": reason})
    print(reason)
    return (fingerprints["caption"], fingerprints["sft"], fingerprints["eval"], fingerprints["base"],
            fingerprints["replay"], version, uri, salt, training, configuration, skip, reason)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def reference_models(models: dict) -> list:
    """Resolve the reference models by content, like snapshot does for the other inputs. Never cached.

    Args:
        models: {name: URI} of the models every candidate is evaluated beside.

    Returns:
        [{"role", "uri", "fingerprint"}] in name order: the items of the pipeline's reference evaluations.
    """
    from components.snapshot.core import reference_list

    return reference_list(models)
