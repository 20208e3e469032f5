"""Running the whole pipeline on this machine through kfp.local, every step in its own process (what
`seavl run` and the integration tests do)."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


def code_fingerprint() -> str:
    """A hash of the steps' code (every .py file under components/): locally, what the image tag is on a
    cluster. It names kfp.local's cache folder, so a run of changed code never reuses a result of old code
    (kfp.local's cache key covers the component's own function source, not the modules it imports)."""
    import components

    root = Path(components.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_pipeline(args: dict, cache: bool = False) -> str:
    """Run the pipeline with `args`; with `cache`, kfp.local reuses the outputs of tasks whose inputs are
    unchanged. Returns the run's KFP run id, which tags its MLflow pipeline run. Raises RuntimeError when a
    task fails."""
    import warnings

    import kfp.local

    from components.common import tracking
    from pipelines.sealion_vl import sealion_vl

    home = tracking.home()
    os.environ["SEAVL_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ["MLFLOW_TRACKING_URI"] = tracking.tracking_uri()  # the steps are subprocesses: pass it on
    run_id = uuid.uuid4().hex
    os.environ[tracking.RUN_ID_ENV] = run_id  # what the pod label gives a step on a cluster
    # kfp.local reminds, for every task, that Kubernetes settings and custom images do nothing on this machine
    warnings.filterwarnings("ignore", message="Task .* have no effect in the current local runner")
    warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(home / "pipeline_root"),
                   enable_caching=cache, cache_root=str(home / "kfp_cache" / code_fingerprint()))
    try:
        sealion_vl(**args)
    finally:
        os.environ.pop(tracking.RUN_ID_ENV, None)
    return run_id
