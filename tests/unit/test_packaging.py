"""Static checks of what cannot run here (the Dockerfiles, the Kubernetes manifests) and of the code's shape:
MLflow writing in one module, the demo outside production code, one torch version."""
import ast
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

TRACKING_CALLS = {"start_run", "end_run", "create_run", "search_runs", "set_terminated", "set_tag", "set_tags",
                  "log_batch", "log_metric", "log_metrics", "log_param", "log_params", "log_artifact",
                  "log_artifacts", "log_dict", "log_text", "log_input", "log_inputs", "log_outputs", "log_model",
                  "log_model_artifacts", "create_logged_model", "create_model_version"}


def _makefile_torch() -> str:
    return re.search(r"^TORCH_SPEC \?= torch==(\S+)", (REPO / "Makefile").read_text(), re.M).group(1)


@pytest.mark.parametrize("name", ["Dockerfile.gpu", "Dockerfile.cpu"])
def test_dockerfiles_install_the_package_without_the_demo_and_drop_root(name):
    text = (REPO / "docker" / name).read_text()
    assert re.search(r"^FROM \S+:\S+", text, re.M), "pin the base image tag"
    for path in ("components", "pipelines", "pyproject.toml"):
        assert re.search(rf"^COPY .*{path}", text, re.M)
    assert not re.search(r"^COPY .*demo", text, re.M), "the demo stays out of production images"
    assert re.search(r"^RUN pip install (--no-cache-dir )?\"?\.", text, re.M)
    assert re.search(r"^USER 1000", text, re.M)
    assert "torchvision" not in text
    # one torch version everywhere: the Makefile's pin is the reference
    assert re.search(r"^ARG TORCH_VERSION=(\S+)", text, re.M).group(1) == _makefile_torch()


def test_component_images_match_the_dockerfiles_and_the_version():
    from components.common import images

    for image, dockerfile in ((images.GPU_IMAGE, "Dockerfile.gpu"), (images.CPU_IMAGE, "Dockerfile.cpu")):
        assert image.rpartition(":")[0] in (REPO / "docker" / dockerfile).read_text()
    version = re.search(r'^version = "(\S+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert version == images.VERSION
    assert images.retag(images.GPU_IMAGE, "0.1.0-abc", "reg.local/team") == "reg.local/team/sealion-vl-gpu:0.1.0-abc"


def _modules(*roots: str):
    for root in roots:
        yield from sorted((REPO / root).rglob("*.py"))


def test_only_the_tracking_wrapper_writes_to_mlflow():
    offenders = []
    for path in _modules("components"):
        if path.name == "tracking.py" and path.parent.name == "common":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in TRACKING_CALLS:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.func.attr}")
    assert offenders == []


def test_production_code_never_imports_the_demo():
    importers = []
    for path in _modules("components", "pipelines"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "demo" or n.startswith("demo.") for n in names):
                importers.append(path.relative_to(REPO).as_posix())
    # the CLI builds the demo when a config asks for it, inside the command; nothing else knows it
    assert set(importers) == {"pipelines/cli.py"}


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
