"""KFP components for evaluation: one task per model (`evaluate`), and the side-by-side report (`compare`)."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Model, Output

from components.common.images import CPU_IMAGE, GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE)
def evaluate(
    role: str,
    eval_data: str,
    eval_fingerprint: str,
    eval_tasks: str,
    languages: str,
    max_new_tokens: int,
    scores: Output[Artifact],
    model: Input[Model] = None,
    model_uri: str = "",
    model_fingerprint: str = "",
    response_cache: str = "",
    gpus: int = 1,
) -> NamedTuple("Outputs", mlflow_run_id=str):
    """Score one model on the configured evaluation tasks: a model artifact of this pipeline, or one by URI.

    Args:
        role: what the model is in this comparison: base, cpt, candidate or champion.
        eval_data: folder holding each task's items file.
        eval_fingerprint: content fingerprint of eval_data from the snapshot step; part of KFP's cache key.
        eval_tasks: comma-separated evaluation task names (components/evaluate/tasks).
        languages: comma-separated languages to score; '' scores every language of the items.
        max_new_tokens: generated replies are cut after this many tokens.
        scores: the model's score table and per-item outputs (JSON).
        model: a model trained in this pipeline (train_cpt, train_sft); when given, model_uri is not used.
        model_uri: a model by URI: a save_pretrained folder (local, s3://) or models:/<name>/<version>; '' with no
            model scores nothing (no champion yet).
        model_fingerprint: content fingerprint of model_uri when its content can change under the same URI (the
            base model); part of KFP's cache key. '' for URIs that never change content.
        response_cache: where replies are kept as they are generated (local or s3://), so that a retried step
            resumes by item id; '' for none.
        gpus: GPUs of this step; the model is spread over them (bf16) when it does not fit one.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    from pathlib import Path

    from components.common.tracking import tracked_step
    from components.evaluate.core import EvalConfig, evaluate_model

    cfg = EvalConfig(tasks=eval_tasks, languages=languages, max_new_tokens=max_new_tokens,
                     response_cache=response_cache, gpus=gpus)
    model_id = model.uri if model is not None else (model_fingerprint or model_uri)
    with tracked_step(f"evaluate-{role}") as step:
        result = evaluate_model(model.path if model is not None else model_uri, eval_data, cfg, model_id=model_id)
        step.record(result.logged(role, eval_data, cfg, model.uri if model is not None else model_uri))
    Path(scores.path).write_text(result.to_json(), encoding="utf-8")
    scores.metadata.update({"role": role, "model": result.model})
    return (step.run_id,)


@dsl.component(base_image=CPU_IMAGE)
def compare(
    base: Input[Artifact],
    cpt: Input[Artifact],
    candidate: Input[Artifact],
    champion: Input[Artifact],
    scores: Output[Artifact],
    report: Output[HTML],
    report_md: Output[Markdown],
    metrics: Output[Metrics],
) -> NamedTuple("Outputs", mlflow_run_id=str):
    """Put the models' scores side by side: a Markdown table and an HTML page with per-language charts.

    Args:
        base: the base model's scores (evaluate).
        cpt: the CPT model's scores.
        candidate: the candidate's (SFT model's) scores.
        champion: the current champion's scores (empty when there is none).
        scores: every role's table in one JSON document ({"scores": {role: table}, "samples": ...}).
        report: the comparison as an HTML page (per-language charts, tables, example outputs).
        report_md: the comparison as a Markdown table.
        metrics: each role's overall figures, for the Kubeflow UI.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    import tempfile
    from pathlib import Path

    from components.common.tracking import Logged, tracked_step
    from components.evaluate.core import ModelScores, compare, overall_metrics
    from components.evaluate.report import write_report

    tables = {role: ModelScores.from_json(Path(a.path).read_text(encoding="utf-8"))
              for role, a in (("base", base), ("cpt", cpt), ("candidate", candidate), ("champion", champion))}
    with tracked_step("compare") as step:
        side_by_side = compare(tables)
        paths = write_report(side_by_side, Path(tempfile.mkdtemp()) / "report", title="Candidate vs base")
        step.record(Logged(metrics=overall_metrics(side_by_side), artifacts={"report": paths["markdown"].parent}),
                    kfp_metrics=metrics)
    for output, name in ((scores, "scores"), (report, "html"), (report_md, "markdown")):
        Path(output.path).write_bytes(paths[name].read_bytes())
    return (step.run_id,)
