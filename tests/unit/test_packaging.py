"""Static checks of what cannot run here: the Dockerfiles and the Kubernetes manifests."""
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO


@pytest.mark.parametrize("name", ["Dockerfile.gpu", "Dockerfile.cpu"])
def test_dockerfiles_install_the_package_and_drop_root(name):
    text = (REPO / "docker" / name).read_text()
    assert re.search(r"^FROM \S+:\S+", text, re.M), "pin the base image tag"
    for path in ("components", "pipelines", "pyproject.toml"):
        assert re.search(rf"^COPY .*{path}", text, re.M)
    assert re.search(r"^RUN pip install (--no-cache-dir )?\.", text, re.M)
    assert re.search(r"^USER 1000", text, re.M)
    assert "torchvision" not in text


def test_component_images_match_the_dockerfiles():
    from components.common import images

    for image, dockerfile in ((images.GPU_IMAGE, "Dockerfile.gpu"), (images.CPU_IMAGE, "Dockerfile.cpu")):
        assert image in (REPO / "docker" / dockerfile).read_text()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_base_renders_the_tracking_stack():
    out = subprocess.run(["kubectl", "kustomize", str(REPO / "infra" / "base")], capture_output=True, text=True,
                         check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "mlflow"), ("StatefulSet", "mlflow-db"), ("Deployment", "minio"),
            ("Secret", "seavl-mlflow")} <= kinds
    secret = next(d for d in docs if d["kind"] == "Secret")
    # the keys the pipeline loads into every step (pipelines/sealion_vl.py) are all in the secret
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= \
        set(secret["data"])
    assert all(d["metadata"].get("namespace", "sealion-vl") == "sealion-vl" for d in docs if d["kind"] != "Namespace")
