"""Multi-node training's TrainJob: built as data, valid against the Kubeflow Trainer CRD's schema (vendored: no
cluster is reachable here), secrets only by reference, and its status read the way the controller writes it."""
import json
from pathlib import Path

import jsonschema
import pytest

from components.train import trainjob

CRD = json.loads((Path(__file__).parents[1] / "support" / "crds" / "trainjob.json").read_text())


def _request(**kw) -> trainjob.JobRequest:
    base = dict(name=trainjob.job_name("cpt", "1cb2912e03f2d111"), namespace="team-a",
                image="ghcr.io/sealion-vl/sealion-vl-gpu:0.1.0-abc1234",
                spec_uri="s3://sealion-vl/checkpoints/cpt/1cb2912e03f2d111/job/spec.json", nodes=4, gpus_per_node=8,
                node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, env={"KFP_RUN_ID": "run-1"})
    return trainjob.JobRequest(**{**base, **kw})


def test_the_manifest_is_valid_against_the_trainjob_crd():
    job = trainjob.manifest(_request(deadline_s=7 * 24 * 3600))
    jsonschema.validate(job, CRD["openAPIV3Schema"])
    assert job["apiVersion"] == f"{CRD['group']}/{CRD['version']}" and job["kind"] == CRD["kind"]
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 4 and trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 8
    assert trainer["command"][:3] == ["torchrun", "-m", "components.train.launch"]
    assert job["spec"]["runtimeRef"]["name"] == "torch-distributed"
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod_spec = pod["template"]["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    # a misspelt field is caught by the schema, as the API server would
    broken = trainjob.manifest(_request())
    broken["spec"]["trainer"]["numProcPerNode"] = "eight"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, CRD["openAPIV3Schema"])


def test_credentials_reach_the_job_only_by_secret_reference(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted-secret-value")
    job = trainjob.manifest(_request())
    assert "planted-secret-value" not in json.dumps(job)
    env = {e["name"]: e for e in job["spec"]["trainer"]["env"]}
    for key in ("MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "seavl-mlflow", "key": key}
        assert "value" not in env[key]
    assert env["KFP_RUN_ID"]["value"] == "run-1"


def test_names_are_short_dns_labels_and_bad_shapes_are_refused():
    name = trainjob.job_name("sft", "0123456789abcdef0123456789")
    assert len(name) <= 40 and name == name.lower() and name.startswith("seavl-sft-")
    with pytest.raises(ValueError, match="at least one node"):
        trainjob.manifest(_request(nodes=0))


@pytest.mark.parametrize("status, expected", [
    ({}, (False, None)),
    ({"conditions": [{"type": "Created", "status": "True"}]}, (False, None)),
    ({"conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted"}]}, (True, None)),
    ({"conditions": [{"type": "Failed", "status": "True", "reason": "FailedJobs",
                      "message": "jobset failed: node-1 exited 137"}]},
     (True, "FailedJobs: jobset failed: node-1 exited 137")),
])
def test_status_conditions_decide_the_outcome(status, expected):
    assert trainjob.outcome({"status": status}) == expected


class _Api:
    """The two CustomObjectsApi calls the watcher makes, answering as the controller would over time."""

    def __init__(self, statuses):
        self.created, self.statuses = [], list(statuses)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.created.append(body)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        return {"status": self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]}


class _Core:
    def list_namespaced_pod(self, namespace, label_selector):
        return type("Pods", (), {"items": []})()


def test_the_launcher_waits_and_fails_with_the_jobs_reason():
    ok = _Api([{}, {"conditions": [{"type": "Complete", "status": "True"}]}])
    trainjob.run(_request(), poll_s=0, api=ok, core=_Core())
    assert len(ok.created) == 1
    failing = _Api([{"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                     "message": "active deadline reached"}]}])
    with pytest.raises(trainjob.TrainJobFailed, match="DeadlineExceeded: active deadline reached"):
        trainjob.run(_request(), poll_s=0, api=failing, core=_Core())
