"""KFP component for preflight: `seavl check` inside the cluster, the pipeline's first step."""
from kfp import dsl

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def preflight(
    caption_manifest: str,
    sft_conversations: str,
    eval_suite: str,
    base_model: str,
    reference_models: dict,
    replay_data: str,
    languages: str,
    caption_validation: dict,
    sft_validation: dict,
    validation_groups: int,
    cpt_training: dict,
    sft_training: dict,
    checkpoint_root: str,
    train_gpus: int,
    train_nodes: int,
    train_node_selector: dict,
    eval_response_cache: str,
    eval_gpus: int,
    eval_node_selector: dict,
    eval_max_new_tokens: int,
    eval_backend: str,
    gate: dict,
    report: dsl.Output[dsl.Markdown],
):
    """Check the run before anything else starts, with the pods' own credentials and network: every input exists
    and reads in its format, each training stage fits the GPUs it asks for, the tracking server and the artifact
    store answer (pipelines/check.py, what `seavl check` runs). Fails naming each problem, so that a run that would
    fail on a path or a fit stops in minutes, before a GPU is requested. Its report (the checks and the predicted
    cost of each stage) is shown in the run's UI. Never cached.

    Args:
        caption_manifest: the CPT image-caption pairs.
        sft_conversations: the SFT conversations.
        eval_suite: the SEA-HELM evaluation suite.
        base_model: the base model folder.
        reference_models: {name: URI} of the reference models.
        replay_data: the text replay conversations ('' for none).
        languages: the languages captions and conversations may be in.
        caption_validation: the caption curation settings.
        sft_validation: the SFT validation settings.
        validation_groups: how many groups the inputs are checked in.
        cpt_training: the CPT settings.
        sft_training: the SFT settings.
        checkpoint_root: where training checkpoints go.
        train_gpus: GPUs per training node.
        train_nodes: nodes per training step.
        train_node_selector: the training nodes' labels (their GPU product sets the memory planned for).
        eval_response_cache: where evaluation replies are kept.
        eval_gpus: GPUs per evaluation step.
        eval_node_selector: the evaluation nodes' labels (their GPU product prices the evaluations).
        eval_max_new_tokens: the cap on replies (0: SEA-HELM's limits), as the evaluations will run.
        eval_backend: how the evaluations generate (auto, transformers or vllm): how they use their GPUs.
        gate: the promotion gate's thresholds.
        report: the checks and the predicted costs, as Markdown.
    """
    from pipelines.check import check_run, markdown

    args = dict(caption_manifest=caption_manifest, sft_conversations=sft_conversations, eval_suite=eval_suite,
                base_model=base_model, reference_models=reference_models, replay_data=replay_data,
                languages=languages, caption_validation=caption_validation, sft_validation=sft_validation,
                validation_groups=validation_groups, cpt_training=cpt_training, sft_training=sft_training,
                checkpoint_root=checkpoint_root, train_gpus=train_gpus, train_nodes=train_nodes,
                train_node_selector=train_node_selector, eval_response_cache=eval_response_cache,
                eval_gpus=eval_gpus, eval_node_selector=eval_node_selector,
                eval_max_new_tokens=eval_max_new_tokens, eval_backend=eval_backend, gate=gate)
    result = check_run(args, in_pipeline=True)
    text = markdown(result)
    print(text, flush=True)
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(text)
    failed = [c for c in result.checks if not c.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(result.checks)} check(s) failed:\n"
                           + "\n".join(f"{c.what} {c.target}: {c.detail}" for c in failed))
