"""KFP component for validate_data: artifact paths in, core call, outputs out. No logic here."""
from kfp import dsl
from kfp.dsl import HTML, Dataset, Metrics, Output

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def validate_data(
    caption_manifest: str,
    languages: str,
    max_caption_chars: int,
    mlflow_experiment: str,
    pipeline_run_id: str,
    pipeline_run_name: str,
    curated: Output[Dataset],
    data_docs: Output[HTML],
    summary: Output[Metrics],
) -> str:
    """Validate the caption manifest with great-expectations; returns the curated data's fingerprint."""
    import os
    from pathlib import Path

    from components.common.tracking import Context
    from components.validate_data.core import ValidateConfig, run

    docs_dir = Path(data_docs.path + "_site")
    report = run(Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), caption_manifest,
                 Path(curated.path), docs_dir, Path(curated.path + ".summary.json"),
                 ValidateConfig(languages=languages, max_caption_chars=max_caption_chars))
    Path(data_docs.path).write_text((docs_dir / "index.html").read_text() if (docs_dir / "index.html").exists()
                                    else "<p>no Data Docs</p>")
    curated.metadata.update({"rows": report.rows_out, "fingerprint": report.fingerprint})
    for key, value in report.metrics().items():
        summary.log_metric(key.replace("/", "_"), value)
    return report.fingerprint
