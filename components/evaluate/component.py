"""KFP components for evaluation: one task per model (`evaluate`), and the side-by-side report (`compare`)."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Model, Output

from components.common.images import CPU_IMAGE, GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def evaluate(
    role: str,
    eval_suite: str,
    eval_fingerprint: str,
    scores: Output[Artifact],
    model: Input[Model] = None,
    model_uri: str = "",
    model_fingerprint: str = "",
    response_cache: str = "",
    gpus: int = 1,
    max_new_tokens: int = 0,
    backend: str = "auto",
) -> NamedTuple("Outputs", mlflow_run_id=str):
    """Run the SEA-HELM suite on one model: a model artifact of this pipeline, or one by URI.

    Args:
        role: what the model is in this comparison: candidate, base, cpt, champion or a reference model's name.
        eval_suite: the SEA-HELM suite (YAML; components/evaluate/seahelm/suite.py), local or s3://.
        eval_fingerprint: content fingerprint of the suite and everything it reads; part of KFP's cache key.
        scores: the model's score table and per-item records (JSON).
        model: a model trained in this pipeline (train_cpt, train_sft); when given, model_uri is not used.
        model_uri: a model by URI: a save_pretrained folder (local, s3://) or models:/<name>/<version>; '' with no
            model scores nothing (no champion yet).
        model_fingerprint: content fingerprint of model_uri when its content can change under the same URI (the
            base and reference models); part of KFP's cache key. '' for URIs that never change content.
        response_cache: where replies are kept as they are generated (local or s3://), so that a retried step
            resumes by item id; '' for none.
        gpus: GPUs of this step; the model is spread over them (bf16) when it does not fit one.
        max_new_tokens: > 0 caps generation below SEA-HELM's limits (a smoke run; the report says so).
        backend: auto (vLLM where the image has it and there are GPUs), transformers or vllm.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    import json
    from pathlib import Path

    from components.common.tracking import tracked_step
    from components.evaluate.core import evaluate_model

    model_id = model.uri if model is not None else (model_fingerprint or model_uri)
    with tracked_step(f"evaluate-{role}") as step:
        result = evaluate_model(model.path if model is not None else model_uri, eval_suite, response_cache,
                                model_id=model_id, gpus=gpus, max_new_tokens=max_new_tokens, backend=backend)
        step.record(result.logged(role, eval_suite, model.uri if model is not None else model_uri, gpus=gpus,
                                  backend=backend))
    Path(scores.path).write_text(json.dumps({"role": role, **json.loads(result.to_json())}, ensure_ascii=False),
                                 encoding="utf-8")
    scores.metadata.update({"role": role, "model": result.model})
    return (step.run_id,)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def compare(
    base: Input[Artifact],
    cpt: Input[Artifact],
    candidate: Input[Artifact],
    champion: Input[Artifact],
    references: Input[list[Artifact]],
    scores: Output[Artifact],
    report: Output[HTML],
    report_md: Output[Markdown],
    metrics: Output[Metrics],
) -> NamedTuple("Outputs", mlflow_run_id=str):
    """Put the models' scores side by side, like a model release: SEA-HELM's aggregates, per-language charts,
    every task with the candidate's paired bootstrap intervals against each other model, example outputs.

    Args:
        base: the base model's scores (evaluate).
        cpt: the CPT model's scores.
        candidate: the candidate's (SFT model's) scores.
        champion: the current champion's scores (empty when there is none).
        references: the reference models' scores (e.g. Gemma-3-27B-IT, Gemma-SEA-LION-v4-27B-IT).
        scores: every role's table in one JSON document ({"scores": {role: table}, "differences": ...}).
        report: the comparison as an HTML page.
        report_md: the comparison as Markdown.
        metrics: each role's headline figures, for the Kubeflow UI.

    Returns:
        mlflow_run_id: the id of this step's MLflow run.
    """
    import json
    import tempfile
    from pathlib import Path

    from components.common.tracking import Logged, tracked_step
    from components.evaluate.core import ModelScores, compare, overall_metrics
    from components.evaluate.report import write_report

    tables = {}
    for artifact in [base, cpt, candidate, champion, *references]:
        text = Path(artifact.path).read_text(encoding="utf-8")
        tables[json.loads(text)["role"]] = ModelScores.from_json(text)
    with tracked_step("compare") as step:
        side_by_side = compare(tables)
        paths = write_report(side_by_side, Path(tempfile.mkdtemp()) / "report", title="Candidate vs base, "
                             "champion and reference models (SEA-HELM)")
        step.record(Logged(metrics=overall_metrics(side_by_side), artifacts={"report": paths["markdown"].parent}),
                    kfp_metrics=metrics)
    for output, name in ((scores, "scores"), (report, "html"), (report_md, "markdown")):
        Path(output.path).write_bytes(paths[name].read_bytes())
    return (step.run_id,)
