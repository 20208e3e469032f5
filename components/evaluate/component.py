"""KFP component for evaluate: artifact paths in, core call, report and metrics out."""
from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Model, Output

from components.common.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE)
def evaluate(
    candidate: Input[Model],
    cpt_model: Input[Model],
    base_model: str,
    eval_data: str,
    registered_model_name: str,
    max_new_tokens: int,
    mlflow_experiment: str,
    pipeline_run_id: str,
    pipeline_run_name: str,
    scores: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
):
    """Candidate, CPT model, base model (and the current champion) side by side on held-out items."""
    from pathlib import Path

    from components.common.tracking import Context
    from components.evaluate.core import EvalConfig, run

    work = Path(scores.path + "_work")
    result = run(Context(mlflow_experiment, pipeline_run_id, pipeline_run_name),
                 {"base": base_model, "cpt": cpt_model.path, "candidate": candidate.path}, eval_data, work,
                 EvalConfig(max_new_tokens=max_new_tokens), registered_model_name=registered_model_name)
    Path(scores.path).write_text((work / "report" / "scores.json").read_text(encoding="utf-8"), encoding="utf-8")
    Path(report.path).write_text((work / "report" / "report.html").read_text(encoding="utf-8"), encoding="utf-8")
    Path(summary.path).write_text((work / "report" / "report.md").read_text(encoding="utf-8"), encoding="utf-8")
    for key, value in result.flat_metrics().items():
        if "/all/" in key or "/summary/" in key:
            metrics.log_metric(key.replace("/", "_"), value)
