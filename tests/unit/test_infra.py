"""The Kubernetes manifests under infra/: every one valid against the Kubernetes schemas (kubernetes-validate,
strict) or, for custom resources, against the vendored CRD schemas (jsonschema); the overlays rendered with
`kubectl kustomize` put the credentials secret where the pipeline's pods run; no manifest carries a credential;
every container is hardened (non-root, no privilege escalation, no capabilities, read-only root), has probes,
requests and limits and a pinned image; the MLflow image has its drivers built in; the bucket Job's script is
idempotent against a real S3 endpoint (moto)."""
from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import json
import re
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.common.images import CREDENTIAL_KEYS, CREDENTIALS_SECRET

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S_VERSION = "1.32.0"   # the kubectl this project is checked with is v1.32
TRACKING_NS = "sealion-vl"
TRACKING_SECRET = "seavl-tracking"
# overlay -> (namespace the pipeline's pods run in, the service account KFP runs them as)
OVERLAYS = {"standalone-kfp": ("kubeflow", "pipeline-runner"),
            "multi-user": ("kubeflow-user-example-com", "default-editor"),
            "gpu-nodepool-example": ("kubeflow", "pipeline-runner")}
CRD_SCHEMAS = {  # the TrainJob schema is the one tests/unit/test_trainjob.py checks the training step's job with
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): ROOT / "tests" / "support" / "crds" / "trainjob.json",
    ("kubeflow.org/v1beta1", "ScheduledWorkflow"): INFRA / "schemas" / "scheduledworkflow.json",
}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
SERVING_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}   # long-running: need probes
CREDENTIAL_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|ROOT_USER|TOKEN|CREDENTIAL", re.I)
PLACEHOLDER = re.compile(r"^CHANGE_ME_[A-Z0-9_]+$")
MLFLOW_IMAGE = "ghcr.io/sealion-vl/sealion-vl-mlflow"


# ---------------------------------------------------------------------------------------------------- helpers

def load_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def is_kustomize_config(doc) -> bool:
    return isinstance(doc, dict) and (doc.get("apiVersion", "").startswith("kustomize.config.k8s.io/")
                                      or doc.get("apiVersion") == "builtin")


def patch_files() -> set[Path]:
    """Files the kustomizations use as patches (partial documents, checked through the rendered overlays)."""
    found = set()
    for kustomization in INFRA.rglob("kustomization.yaml"):
        for patch in load_docs(kustomization)[0].get("patches") or []:
            if "path" in patch:
                found.add((kustomization.parent / patch["path"]).resolve())
    return found


def manifest_files() -> dict[Path, list]:
    """Every YAML file under infra/ that holds Kubernetes objects, with its documents."""
    patches = patch_files()
    out = {}
    for path in sorted(INFRA.rglob("*.yaml")):
        if path.resolve() in patches:
            continue
        docs = load_docs(path)
        if all(is_kustomize_config(d) for d in docs):
            continue
        out[path] = docs
    return out


def validate(doc: dict) -> None:
    """The Kubernetes schema of its kind (strict: unknown fields are errors), or its CRD's schema."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        schema = json.loads(CRD_SCHEMAS[key].read_text())["openAPIV3Schema"]
        jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def env_file(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind not in POD_KINDS:
        return None
    if kind == "Pod":
        return doc["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def containers(docs) -> list[tuple[dict, dict, dict]]:
    """(object, pod spec, container) for every container of every workload."""
    out = []
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            out += [(doc, spec, c) for c in spec.get("initContainers", []) + spec["containers"]]
    return out


def image_pinned(image: str) -> bool:
    """A digest, or a tag that names a release: a dotted version (16.10, 3.17.2-1, 12.6.3-base-ubuntu22.04,
    25.01-py3) or MinIO's dated RELEASE tag; never `latest`, never a bare major (postgres:16) or no tag at all."""
    if "latest" in image.lower():
        return False
    name, _, digest = image.partition("@")
    if digest:
        return re.fullmatch(r"sha256:[0-9a-f]{64}", digest) is not None
    if ":" not in name.rsplit("/", 1)[-1]:
        return False
    tag = name.rsplit(":", 1)[1]
    return bool(re.fullmatch(r"v?\d+(\.\d+)+([.-][A-Za-z0-9][\w.-]*)?", tag)
                or re.fullmatch(r"RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z", tag))


def find(docs, kind: str, name: str) -> dict:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{len(hits)} {kind} named {name}"
    return hits[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list]:
    """Each overlay as `kubectl kustomize` renders it, from a copy of infra/ whose real env files are the
    templates (the work tree never gets a secrets.env)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: the overlays cannot be rendered")
    copy = tmp_path_factory.mktemp("infra") / "infra"
    shutil.copytree(INFRA, copy, ignore=shutil.ignore_patterns("secrets.env"))
    for template in copy.rglob("secrets.example.env"):
        shutil.copy(template, template.with_name("secrets.env"))
    out = {}
    for overlay in OVERLAYS:
        done = subprocess.run([kubectl, "kustomize", str(copy / "overlays" / overlay)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        out[overlay] = load_docs_text(done.stdout)
    return out


def load_docs_text(text: str) -> list:
    return [d for d in yaml.safe_load_all(text) if d is not None]


# ---------------------------------------------------------------------------------------------------- schemas

def test_every_manifest_file_validates_against_its_schema():
    files = manifest_files()
    kinds = set()
    for path, docs in files.items():
        for doc in docs:
            try:
                validate(doc)
            except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as err:
                pytest.fail(f"{path.relative_to(ROOT)}: {doc.get('kind')} {doc['metadata'].get('name')}: {err}")
            kinds.add(doc["kind"])
    # every file was looked at: the tracking stack, the pipeline side, the examples
    assert {"Namespace", "Deployment", "StatefulSet", "Job", "Service", "PersistentVolumeClaim", "ServiceAccount",
            "Role", "RoleBinding", "ConfigMap", "TrainJob", "ScheduledWorkflow"} <= kinds
    assert {p.relative_to(INFRA).as_posix() for p in files} >= {
        "tracking/mlflow.yaml", "tracking/postgres.yaml", "tracking/minio.yaml", "tracking/buckets.yaml",
        "base/rbac.yaml", "base/kfp-launcher.yaml", "overlays/gpu-nodepool-example/gpu-smoke-test.yaml",
        "examples/recurring-run.yaml", "examples/trainjob-gpu-smoke.yaml"}


def test_validation_is_strict():
    """The checks above would catch a misspelt field, in a Kubernetes object and in a custom resource."""
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                      "metadata": {"labels": {"a": "b"}},
                      "spec": {"containers": [{"name": "a", "image": "a:1.0", "imagePullPolicyy": "Always"}]}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    swf = load_docs(INFRA / "examples" / "recurring-run.yaml")[0]
    validate(swf)
    swf["spec"]["trigger"]["cronSchedule"]["crons"] = swf["spec"]["trigger"]["cronSchedule"].pop("cron")
    with pytest.raises(jsonschema.ValidationError):
        validate(swf)
    swf = load_docs(INFRA / "examples" / "recurring-run.yaml")[0]
    swf["spec"]["maxConcurrency"] = 11
    with pytest.raises(jsonschema.ValidationError):
        validate(swf)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_validates(rendered, overlay):
    docs = rendered[overlay]
    namespace = OVERLAYS[overlay][0]
    expected = {("Namespace", None, "sealion-vl"), ("Secret", namespace, CREDENTIALS_SECRET),
                ("Role", namespace, "seavl-trainjobs"), ("RoleBinding", namespace, "seavl-trainjobs"),
                ("ConfigMap", namespace, "kfp-launcher")}
    expected |= {(kind, TRACKING_NS, name) for kind, name in [
        ("Secret", TRACKING_SECRET), ("ConfigMap", "seavl-create-buckets"), ("ServiceAccount", "seavl-mlflow"),
        ("ServiceAccount", "seavl-mlflow-db"), ("ServiceAccount", "seavl-minio"),
        ("ServiceAccount", "seavl-create-buckets"), ("Service", "mlflow"), ("Service", "mlflow-db"),
        ("Service", "minio"), ("PersistentVolumeClaim", "minio-data"), ("Deployment", "mlflow"),
        ("Deployment", "minio"), ("StatefulSet", "mlflow-db"), ("Job", "seavl-create-buckets")]}
    if overlay == "gpu-nodepool-example":
        expected.add(("Job", TRACKING_NS, "seavl-gpu-smoke-test"))
    assert {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs} == expected
    assert len(docs) == len(expected)
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as err:
            pytest.fail(f"{overlay}: {doc['kind']} {doc['metadata']['name']}: {err}")


def test_scheduled_workflow_example_is_a_recurring_run_of_the_pipeline():
    swf = load_docs(INFRA / "examples" / "recurring-run.yaml")[0]
    assert (swf["apiVersion"], swf["kind"]) == ("kubeflow.org/v1beta1", "ScheduledWorkflow")
    spec = swf["spec"]
    assert spec["enabled"] is True and spec["maxConcurrency"] == 1 and spec["noCatchup"] is True
    assert len(spec["trigger"]["cronSchedule"]["cron"].split()) == 6   # KFP's cron has seconds
    assert {"name": "skip_if_unchanged", "value": "true"} in spec["workflow"]["parameters"]
    assert "EXAMPLE" in (INFRA / "examples" / "recurring-run.yaml").read_text()
    assert "seavl schedule" in (INFRA / "examples" / "recurring-run.yaml").read_text()


# ---------------------------------------------------------------------------------------------------- namespaces

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_credentials_secret_lands_where_the_pipeline_pods_run(rendered, overlay):
    namespace, runner = OVERLAYS[overlay]
    docs = rendered[overlay]
    secrets = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == CREDENTIALS_SECRET]
    assert [s["metadata"]["namespace"] for s in secrets] == [namespace]
    assert sorted(secrets[0]["data"]) == sorted(CREDENTIAL_KEYS)
    tracking = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == TRACKING_SECRET]
    assert [s["metadata"]["namespace"] for s in tracking] == [TRACKING_NS]
    # what the steps need is beside the secret; the tracking stack stays in its own namespace
    for kind, name in (("Role", "seavl-trainjobs"), ("RoleBinding", "seavl-trainjobs"), ("ConfigMap", "kfp-launcher")):
        assert find(docs, kind, name)["metadata"]["namespace"] == namespace
    binding = find(docs, "RoleBinding", "seavl-trainjobs")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": runner, "namespace": namespace}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "seavl-trainjobs"}
    pipeline_side = {("Secret", CREDENTIALS_SECRET), ("Role", "seavl-trainjobs"), ("RoleBinding", "seavl-trainjobs"),
                     ("ConfigMap", "kfp-launcher")}
    for doc in docs:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == TRACKING_NS
        elif (doc["kind"], doc["metadata"]["name"]) not in pipeline_side:
            assert doc["metadata"]["namespace"] == TRACKING_NS, doc["metadata"]
    # every secret a workload refers to is in its own namespace
    for doc, _, container in containers(docs):
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret = [s for s in docs if s["kind"] == "Secret" and s["metadata"]["name"] == ref["name"]
                          and s["metadata"]["namespace"] == doc["metadata"]["namespace"]]
                assert secret and ref["key"] in secret[0]["data"], (doc["metadata"]["name"], ref)


def test_kfp_launcher_reaches_the_s3_pipeline_root_with_the_secret(rendered):
    launcher = find(rendered["standalone-kfp"], "ConfigMap", "kfp-launcher")
    s3 = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]
    endpoint = env_file(INFRA / "base" / "secrets.example.env")["MLFLOW_S3_ENDPOINT_URL"]
    assert endpoint == f"http://{s3['endpoint']}" and s3["disableSSL"] is True and s3["forcePathStyle"] is True
    ref = s3["credentials"]["secretRef"]
    assert s3["credentials"]["fromEnv"] is False
    assert ref == {"secretName": CREDENTIALS_SECRET, "accessKeyKey": "AWS_ACCESS_KEY_ID",
                   "secretKeyKey": "AWS_SECRET_ACCESS_KEY"}
    assert {ref["accessKeyKey"], ref["secretKeyKey"]} <= set(CREDENTIAL_KEYS)
    assert "defaultPipelineRoot" not in launcher["data"]   # KFP's own value is kept


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_is_least_privilege_and_namespaced(rendered, overlay):
    docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = [d for d in docs if d["kind"] == "Role"]
    assert [r["metadata"]["name"] for r in roles] == ["seavl-trainjobs"]
    # exactly what components/train/trainjob.py calls: create/get/delete a TrainJob, read its own pod, list the
    # job's pods, follow a pod's log; no secrets, no wildcards
    assert roles[0]["rules"] == [
        {"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs"], "verbs": ["create", "get", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    # the tracking stack's accounts have no API access at all
    for account in (d for d in docs if d["kind"] == "ServiceAccount"):
        assert account["metadata"]["namespace"] == TRACKING_NS
        assert account["automountServiceAccountToken"] is False
    for doc, spec, _ in containers(docs):
        assert spec.get("automountServiceAccountToken") is False, doc["metadata"]["name"]


# ---------------------------------------------------------------------------------------------------- credentials

def test_secret_templates_hold_placeholders_only():
    pipeline = env_file(INFRA / "base" / "secrets.example.env")
    tracking = env_file(INFRA / "tracking" / "secrets.example.env")
    assert list(pipeline) == list(CREDENTIAL_KEYS)
    assert set(tracking) == {"POSTGRES_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                             "MLFLOW_S3_ENDPOINT_URL"}
    for values in (pipeline, tracking):
        for key, value in values.items():
            if CREDENTIAL_NAME.search(key):
                assert PLACEHOLDER.fullmatch(value), (key, value)
            else:   # addresses of the in-cluster services, no credentials
                assert re.fullmatch(r"http://[a-z0-9.-]+\.svc\.cluster\.local:\d+", value), (key, value)
    assert pipeline["MLFLOW_TRACKING_URI"] == "http://mlflow.sealion-vl.svc.cluster.local:5000"
    # the generators read the real files, which git ignores
    for kustomization in (INFRA / "base" / "kustomization.yaml", INFRA / "tracking" / "kustomization.yaml"):
        generators = load_docs(kustomization)[0]["secretGenerator"]
        assert [g["envs"] for g in generators] == [["secrets.env"]]
        assert generators[0]["options"]["disableNameSuffixHash"] is True
    if shutil.which("git") and (ROOT / ".git").exists():
        for real in ("infra/base/secrets.env", "infra/tracking/secrets.env"):
            assert subprocess.run(["git", "check-ignore", "-q", real], cwd=ROOT).returncode == 0, real
        assert subprocess.run(["git", "check-ignore", "-q", "infra/base/secrets.example.env"], cwd=ROOT).returncode == 1


def _check_no_credentials(label: str, docs: list) -> None:
    checked = set()
    for _, _, container in containers(docs):
        for env in container.get("env", []):
            if CREDENTIAL_NAME.search(env["name"]):
                assert "value" not in env and "secretKeyRef" in env["valueFrom"], (label, env)
                checked.add((container["name"], env["name"]))
        for source in container.get("envFrom", []):
            assert "secretRef" in source or "configMapRef" in source
    assert checked == {("minio", "MINIO_ROOT_USER"), ("minio", "MINIO_ROOT_PASSWORD"),
                       ("postgres", "POSTGRES_PASSWORD"), ("mlflow", "PGPASSWORD"),
                       ("mlflow", "AWS_ACCESS_KEY_ID"), ("mlflow", "AWS_SECRET_ACCESS_KEY"),
                       ("create-buckets", "AWS_ACCESS_KEY_ID"), ("create-buckets", "AWS_SECRET_ACCESS_KEY")}, label
    for doc in docs:
        assert not re.search(r"AKIA[0-9A-Z]{16}", json.dumps(doc)), (label, doc["metadata"]["name"])
        if doc["kind"] == "ConfigMap":
            assert not any(CREDENTIAL_NAME.search(k) for k in doc.get("data", {})), doc["metadata"]["name"]


def test_no_manifest_file_carries_a_credential():
    static = [d for docs in manifest_files().values() for d in docs]
    assert not [d for d in static if d["kind"] == "Secret"]   # secrets come only from the generators
    _check_no_credentials("files", static)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_rendered_overlay_carries_a_credential(rendered, overlay):
    _check_no_credentials(overlay, rendered[overlay])
    # what the rendered secrets hold is what the templates hold (the test rendered them from the templates)
    templates = {CREDENTIALS_SECRET: env_file(INFRA / "base" / "secrets.example.env"),
                 TRACKING_SECRET: env_file(INFRA / "tracking" / "secrets.example.env")}
    secrets = [d for d in rendered[overlay] if d["kind"] == "Secret"]
    assert len(secrets) == 2
    for secret in secrets:
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert decoded == templates[secret["metadata"]["name"]]


# ---------------------------------------------------------------------------------------------------- workloads

def test_image_pinning_rule():
    for good in ("postgres:16.10", "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", f"{MLFLOW_IMAGE}:3.17.2-1",
                 "nvcr.io/nvidia/pytorch:25.01-py3", "python@sha256:" + "a" * 64, "localhost:5000/x:1.2"):
        assert image_pinned(good), good
    for bad in ("postgres:16", "postgres", "postgres:latest", "minio/mc:RELEASE.latest", "python:slim",
                "localhost:5000/x", "x@sha256:abc"):
        assert not image_pinned(bad), bad


@pytest.mark.parametrize("source", ["files", *OVERLAYS])
def test_every_container_is_hardened_with_probes_resources_and_a_pinned_image(request, source):
    if source == "files":
        docs = [d for ds in manifest_files().values() for d in ds]
    else:
        docs = request.getfixturevalue("rendered")[source]
    found = containers(docs)
    assert len(found) >= 4   # PostgreSQL, MinIO, MLflow, the bucket Job (and the GPU smoke test where it is)
    for doc, spec, c in found:
        where = f"{source}: {doc['kind']} {doc['metadata']['name']}/{c['name']}"
        pod_sc, sc = spec.get("securityContext", {}), c.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) > 0, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert (sc.get("seccompProfile") or pod_sc.get("seccompProfile")) == {"type": "RuntimeDefault"}, where
        assert image_pinned(c["image"]), where
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c.get("resources", {}).get(bound, {})), (where, bound)
        if doc["kind"] in SERVING_KINDS:
            assert c.get("readinessProbe") and c.get("livenessProbe"), where
        else:   # a Job runs to completion: no probes, a deadline instead
            assert doc["spec"]["activeDeadlineSeconds"] > 0, where
        # a read-only root: whatever writes gets an emptyDir or a volume (the GPU smoke test writes nothing)
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts or c["name"] == "nvidia-smi", where
    if source == "files":   # the TrainJob example runs non-root with a pinned image too
        job = load_docs(INFRA / "examples" / "trainjob-gpu-smoke.yaml")[0]
        assert image_pinned(job["spec"]["trainer"]["image"])
        pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
            "template"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_mlflow_server_has_its_drivers_built_in_and_the_settings_asked_for(rendered):
    deployment = find(rendered["standalone-kfp"], "Deployment", "mlflow")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    command = " ".join(c.get("command", []) + c.get("args", []))
    assert "pip install" not in command and "pip" not in c["command"]
    assert c["command"] == ["mlflow", "server"]
    assert "--backend-store-uri=postgresql://mlflow@mlflow-db:5432/mlflow" in c["args"]   # password: PGPASSWORD
    assert "--artifacts-destination=s3://sealion-vl/mlflow" in c["args"] and "--serve-artifacts" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": TRACKING_SECRET, "key": "POSTGRES_PASSWORD"}
    assert c["image"] == f"{MLFLOW_IMAGE}:3.17.2-1"
    uid = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]

    dockerfile = (INFRA / "mlflow" / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    pins = dict(re.findall(r'"([a-z0-9-]+)==([^"]+)"', dockerfile))
    assert pins["mlflow"] == importlib.metadata.version("mlflow") == "3.17.2"
    assert pins["boto3"] == importlib.metadata.version("boto3")
    assert re.fullmatch(r"\d+\.\d+\.\d+", pins["psycopg2-binary"])
    assert c["image"].rsplit(":", 1)[1].startswith(pins["mlflow"] + "-")
    assert re.findall(r"^USER (\S+)$", dockerfile, re.M) == [str(uid)]
    assert not re.search(r"^(CMD|ENTRYPOINT).*pip", dockerfile, re.M)
    # the build script tags what the overlays pull
    assert 'tag=${TAG:-3.17.2-1}' in (INFRA / "mlflow" / "build.sh").read_text()
    for overlay in ("standalone-kfp", "multi-user"):
        images = load_docs(INFRA / "overlays" / overlay / "kustomization.yaml")[0]["images"]
        assert images == [{"name": MLFLOW_IMAGE, "newName": MLFLOW_IMAGE, "newTag": "3.17.2-1"}]


def test_other_images_are_the_chosen_releases(rendered):
    images = {c["name"]: c["image"] for _, _, c in containers(rendered["gpu-nodepool-example"])}
    assert images == {"postgres": "postgres:16.10", "minio": "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z",
                      "mlflow": f"{MLFLOW_IMAGE}:3.17.2-1", "create-buckets": f"{MLFLOW_IMAGE}:3.17.2-1",
                      "nvidia-smi": "nvcr.io/nvidia/cuda:12.6.3-base-ubuntu22.04"}


def test_gpu_nodepool_example_keeps_the_tracking_stack_off_gpu_nodes(rendered):
    docs = rendered["gpu-nodepool-example"]
    off_gpu = {"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}
    for doc, spec, c in containers(docs):
        terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
        if c["name"] == "nvidia-smi":
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
            assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and not terms
        else:
            assert terms == [{"matchExpressions": [off_gpu]}], doc["metadata"]["name"]
    assert not any("affinity" in (pod_spec(d) or {}) for d in rendered["standalone-kfp"])


# ---------------------------------------------------------------------------------------------------- bucket Job

def test_bucket_job_reads_the_secret_and_creates_the_pipeline_bucket(rendered):
    job = find(rendered["standalone-kfp"], "Job", "seavl-create-buckets")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["BUCKETS"]["value"] == "sealion-vl"
    for key in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": TRACKING_SECRET, "key": key}
    assert c["command"] == ["python", "/scripts/create_buckets.py"]
    script = find(rendered["standalone-kfp"], "ConfigMap", "seavl-create-buckets")["data"]["create_buckets.py"]
    assert script == (INFRA / "tracking" / "create_buckets.py").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bucket_script_is_idempotent_against_s3(monkeypatch, capsys):
    from moto.server import ThreadedMotoServer

    spec = importlib.util.spec_from_file_location("create_buckets", INFRA / "tracking" / "create_buckets.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    capsys.readouterr()
    try:
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
            monkeypatch.setenv(key, value)
        # moto keeps one store per process, shared with the other tests' servers: names of this test's own
        first, second = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("sealion-vl", "other"))
        environ = {"BUCKETS": f"{first}, {second}", "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                   "WAIT_SECONDS": "5"}
        assert script.main(environ) == 0
        assert script.main(environ) == 0   # again: nothing to do, still success
        out = capsys.readouterr().out.splitlines()
        assert out == [f"s3://{first}: created", f"s3://{second}: created",
                       f"s3://{first}: exists", f"s3://{second}: exists"]
        s3 = script.connect(environ["MLFLOW_S3_ENDPOINT_URL"], "us-east-1")
        assert {first, second} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
        # an endpoint that never answers fails within WAIT_SECONDS
        with pytest.raises(SystemExit, match="did not answer"):
            script.main({"MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}", "WAIT_SECONDS": "0"})
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------- runbook

def test_runbook_names_files_that_exist_and_the_pipeline_defaults():
    readme = (INFRA / "README.md").read_text()
    for path in set(re.findall(r"\b((?:infra|docker)/[\w./-]+\w)", readme)):
        assert (ROOT / path).exists() or path.endswith("/secrets.env"), path   # secrets.env: the user makes it
    for key in ("s3://sealion-vl/data/captions/", "s3://sealion-vl/data/mammoth-vl/sft.jsonl",
                "s3://sealion-vl/eval/seahelm/suite.yaml", "s3://sealion-vl/models/gemma-sea-lion-v4-27b-it",
                "s3://sealion-vl/models/gemma-3-27b-it"):
        assert key in readme, key
    for command in ("kubectl apply -k infra/overlays/standalone-kfp", "seavl compile", "seavl submit",
                    "seavl schedule", "seavl image-tag"):
        assert command in readme, command
