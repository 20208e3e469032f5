"""Container images the steps run in (built from docker/). Components name the images by the project version;
`seavl compile` writes the immutable tag `<version>-<git commit>` (and the chosen registry) into the compiled
YAML, so that a run of new code never meets a KFP cache entry made by old code."""
from __future__ import annotations

VERSION = "0.1.0"  # = pyproject's version (tests/unit/test_packaging.py)
REGISTRY = "ghcr.io/sealion-vl"
GPU_IMAGE = f"{REGISTRY}/sealion-vl-gpu:{VERSION}"   # train, evaluate: CUDA torch + the package
CPU_IMAGE = f"{REGISTRY}/sealion-vl-cpu:{VERSION}"   # snapshot, validate, compare, gate, register, ...

# The Kubernetes secret every step's pod (and a multi-node training job's pods) takes its credentials from, and
# its keys (infra/base/secrets.example.env). Values never appear in a manifest: only references to this secret.
CREDENTIALS_SECRET = "seavl-mlflow"
CREDENTIAL_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def running_image() -> str:
    """The tag of the image this process runs in (docker/ bakes it in as SEAVL_IMAGE_TAG); "local" outside one."""
    import os

    return os.environ.get("SEAVL_IMAGE_TAG") or "local"


def release_tag(commit: str) -> str:
    """The immutable image tag of a code version."""
    return f"{VERSION}-{commit}"


def retag(image: str, tag: str, registry: str | None = None) -> str:
    """`image` with tag `tag`, in `registry` when given."""
    repo, _, _ = image.rpartition(":")
    if registry:
        repo = f"{registry.rstrip('/')}/{repo.rsplit('/', 1)[-1]}"
    return f"{repo}:{tag}"
