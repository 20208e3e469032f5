"""KFP components for the gate, registration and the gated promotion."""
from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def gate(scores: Input[Artifact], text_tolerance: float, caption_tolerance: float) -> bool:
    """True when the candidate may become champion: captioning not worse than base (minus caption_tolerance)
    and text not worse than base minus text_tolerance."""
    from pathlib import Path

    from components.register.core import gate as decide

    decision = decide(Path(scores.path).read_text(encoding="utf-8"), text_tolerance, caption_tolerance)
    print("\n".join(decision.reasons))
    return decision.promote


@dsl.component(base_image=CPU_IMAGE)
def register(
    candidate: Input[Model],
    scores: Input[Artifact],
    promote: bool,
    registered_model_name: str,
    data_fingerprint: str,
    base_model: str,
    git_commit: str,
    text_tolerance: float,
    caption_tolerance: float,
    mlflow_experiment: str,
    pipeline_run_id: str,
    pipeline_run_name: str,
) -> str:
    """Register the candidate with its lineage and the gate's verdict; returns the model version."""
    from pathlib import Path

    from components.common.tracking import Context
    from components.register.core import run

    lineage = {"data_fingerprint": data_fingerprint, "base_model": base_model, "git_commit": git_commit,
               "pipeline_run_id": pipeline_run_id, "pipeline_run_name": pipeline_run_name}
    return run(Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), Path(candidate.path),
               Path(scores.path).read_text(encoding="utf-8"), registered_model_name, lineage, text_tolerance,
               caption_tolerance, gate_verdict=promote)


@dsl.component(base_image=CPU_IMAGE)
def promote(registered_model_name: str, version: str, mlflow_experiment: str, pipeline_run_id: str,
            pipeline_run_name: str):
    """Move the `champion` alias to the registered version (runs only when the gate passed)."""
    from components.common.tracking import Context
    from components.register.core import run_promote

    run_promote(Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), registered_model_name, version)
