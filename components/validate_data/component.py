"""KFP components for validate_data: plan -> check (one task per group, in a ParallelFor) -> merge.

Artifact paths in, core call, outputs out; the logic is in core.py, the same code `seavl validate` runs.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def plan_data(
    input_uri: str,
    input_fingerprint: str,
    kind: str,
    languages: str,
    settings: dict,
    groups: int,
) -> list[str]:
    """List the input's units (manifest ranges, Parquet row groups, tar shards) and split them into groups.

    The settings travel with each group (one output, as kfp.local's ParallelFor iterates only a task's single
    output).

    Args:
        input_uri: a JSONL/Parquet manifest, or a folder/prefix of manifests or WebDataset shards (local or s3://).
        input_fingerprint: content fingerprint of input_uri (snapshot step); part of KFP's cache key.
        kind: captions, conversations or auto.
        languages: comma-separated ISO 639-1 codes accepted.
        settings: further validation settings (components/validate_data/core.py, ValidateConfig).
        groups: how many groups to split the units into (each one a parallel task).

    Returns:
        Each group as JSON: {"config": the complete validation settings, "units": [...], "fingerprint": the
        input's}. The fingerprint makes each check task's cache key follow the content, not only the byte
        ranges it reads.
    """
    from components.validate_data.core import ValidateConfig, plan, task_groups

    cfg = ValidateConfig(**{**settings, "kind": kind, "languages": languages})
    found, grouped = plan(input_uri, cfg, groups)
    return task_groups(cfg.model_copy(update={"kind": found}), grouped, input_fingerprint)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def check_data(group: str, work: Output[Artifact]):
    """Check every record of one group of units; candidates and quarantined rows as Parquet in `work`.

    Args:
        group: the group's settings and units as JSON (plan_data).
        work: candidate rows, quarantined rows, counts and settings of this group, for merge_data.
    """
    from pathlib import Path

    from components.validate_data.core import check_task_group

    stats = check_task_group(group, Path(work.path))
    work.metadata.update({"rows_in": stats["rows_in"], "units": len(stats["units"])})


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge_data(
    input_uri: str,
    eval_data: str,
    work: Input[list[Artifact]],
    curated: Output[Dataset],
    quarantine: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
    eval_fingerprint: str = "",
) -> NamedTuple("Outputs", data_fingerprint=str, rows=int, mlflow_run_id=str):
    """Deduplicate across groups, run the dataset expectations (great-expectations), write the curated dataset.

    Args:
        input_uri: the input that was validated (recorded as a parameter).
        eval_data: the evaluation suite (or item files) whose images must not be trained on ('' = none).
        eval_fingerprint: content fingerprint of eval_data (snapshot): part of KFP's cache key, so that a suite
            changed in place is checked again.
        work: every check_data task's output.
        curated: the curated rows, a folder of Parquet files (schema in components/validate_data/schema.py).
        quarantine: every row set aside, with its reason and detail (Parquet).
        report: counts, expectations and plots on one page; the Data Docs site is in the step's MLflow run.
        metrics: row counts and expectation results, for the Kubeflow UI.

    Returns:
        data_fingerprint: content fingerprint of the curated dataset (lineage of every model trained on it).
        rows: the rows curated.
        mlflow_run_id: the id of this step's MLflow run.
    """
    import tempfile
    from pathlib import Path

    from components.common.tracking import tracked_step
    from components.validate_data.core import Outputs, group_config, merge

    cfg = group_config(Path(work[0].path))
    if eval_data and not cfg.eval_sets:
        cfg = cfg.model_copy(update={"eval_sets": eval_data})
    scratch = Path(tempfile.mkdtemp())
    out = Outputs(Path(curated.path), Path(quarantine.path), scratch / "metrics.json", scratch / "data_docs",
                  Path(report.path))
    with tracked_step(f"validate_{cfg.kind}") as step:
        result = merge(input_uri, cfg.kind, [Path(w.path) for w in work], out, cfg)
        step.record(result.logged(input_uri, cfg, out), kfp_metrics=metrics)
    curated.metadata.update({"rows": result.rows_curated, "fingerprint": result.fingerprint, "kind": result.kind})
    quarantine.metadata.update({"rows": result.rows_quarantined, "reasons": result.reasons})
    return (result.fingerprint, result.rows_curated, step.run_id)
