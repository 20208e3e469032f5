"""KFP component for validate_data: artifact paths in, core call, outputs out. No logic here."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Metrics, Output

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def validate_data(
    caption_manifest: str,
    caption_fingerprint: str,
    languages: str,
    max_caption_chars: int,
    curated: Output[Dataset],
    data_docs: Output[HTML],
    metrics: Output[Metrics],
) -> NamedTuple("Outputs", data_fingerprint=str, mlflow_run_id=str):
    """Validate the caption manifest with great-expectations and write the curated manifest.

    Args:
        caption_manifest: the CPT image-caption manifest (JSONL or Parquet, local or s3://).
        caption_fingerprint: content fingerprint of caption_manifest from the snapshot step; part of KFP's cache
            key, so changed captions are validated again.
        languages: comma-separated ISO 639-1 codes a caption may be in.
        max_caption_chars: longest caption accepted.
        curated: the curated manifest (image references resolved, duplicate pairs dropped).
        data_docs: great-expectations Data Docs of the validation.
        metrics: row counts and expectation results, for the Kubeflow UI.

    Returns:
        data_fingerprint: content fingerprint of the curated manifest (lineage of every model trained on it).
        mlflow_run_id: the id of this step's MLflow run.
    """
    from pathlib import Path

    from components.common.tracking import tracked_step
    from components.validate_data.core import ValidateConfig, validate_captions

    docs_dir = Path(data_docs.path + "_site")  # the whole site; data_docs holds its index page
    cfg = ValidateConfig(languages=languages, max_caption_chars=max_caption_chars)
    with tracked_step("validate_data") as step:
        report = validate_captions(caption_manifest, Path(curated.path), docs_dir, cfg)
        step.record(report.logged(caption_manifest, cfg, docs_dir), kfp_metrics=metrics)
    index = docs_dir / "index.html"
    Path(data_docs.path).write_text(index.read_text() if index.exists() else "<p>no Data Docs</p>")
    curated.metadata.update({"rows": report.rows_out, "fingerprint": report.fingerprint})
    return (report.fingerprint, step.run_id)
