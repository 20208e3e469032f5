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
    # no Istio sidecar in a multi-user profile namespace: it would sit between torchrun's rendezvous and NCCL
    assert pod["template"]["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
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
    """The CustomObjectsApi calls the watcher makes, answering as the API server and the controller would:
    `existing` is the status of a job an earlier attempt left (None: no such job)."""

    def __init__(self, statuses, existing=None):
        self.created, self.deleted, self.statuses, self.existing = [], [], list(statuses), existing

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, field_validation=None):
        from kubernetes.client.exceptions import ApiException

        assert field_validation == "Strict"
        if self.existing is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        self.created.append(body)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        from kubernetes.client.exceptions import ApiException

        if self.deleted and not self.created:
            raise ApiException(status=404, reason="NotFound")
        if self.existing is not None:
            return {"status": self.existing}
        return {"status": self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, propagation_policy=None):
        assert propagation_policy == "Foreground"
        self.deleted.append(name)
        self.existing = None


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


def test_a_retried_step_restarts_a_failed_job_and_reuses_a_completed_one():
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "preempted"}]}
    complete = {"conditions": [{"type": "Complete", "status": "True"}]}
    api = _Api([complete], existing=failed)
    trainjob.run(_request(), poll_s=0, api=api, core=_Core())
    assert api.deleted == [_request().name] and len(api.created) == 1   # deleted, then created again
    done = _Api([complete], existing=complete)
    trainjob.run(_request(), poll_s=0, api=done, core=_Core(), finished=lambda: True)
    assert done.deleted == [] and done.created == []                     # its result is there: nothing to redo
    running = _Api([complete], existing={"conditions": [{"type": "Created", "status": "True"}]})
    later = iter([{"conditions": [{"type": "Created", "status": "True"}]}, {}, complete])
    running.get_namespaced_custom_object = lambda *a: {"status": next(later)}
    trainjob.run(_request(), poll_s=0, api=running, core=_Core())
    assert running.deleted == [] and running.created == []               # still running: watched, not replaced


def test_a_multi_node_step_hands_its_nodes_everything_through_s3(demo, bucket, monkeypatch, tmp_path):
    """The launcher's side of a TrainJob against a real S3 server (moto): the spec it writes is what the job's
    nodes run, and the model and the result come back through S3. The cluster's part (starting the manifest's
    command on every node) is played by two local processes running that command."""
    import os
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.common import storage
    from components.train import launch, stage
    from components.train.loop import TrainConfig

    root = Path(demo.captions).parent
    rows = [json.loads(line) for line in Path(demo.captions).read_text().splitlines()[:64]]
    (tmp_path / "curated").mkdir()
    pq.write_table(pa.table({"image": [str(root / r["image"]) for r in rows], "member": [None] * 64,
                             "caption": [r["caption"] for r in rows], "lang": [r["lang"] for r in rows]}),
                   tmp_path / "curated" / "part-0.parquet")
    data = storage.publish(tmp_path / "curated", f"s3://{bucket}/data/curated")
    base = storage.publish(Path(demo.base_model), f"s3://{bucket}/models/base")
    monkeypatch.setattr(trainjob, "current_namespace", lambda: "team-a")
    monkeypatch.setattr(trainjob, "own_image", lambda namespace: "ghcr.io/sealion-vl/sealion-vl-gpu:0.1.0-abc1234")
    submitted = []

    def cluster(req, **kwargs):
        job = trainjob.manifest(req)
        jsonschema.validate(job, CRD["openAPIV3Schema"])
        submitted.append(job)
        _torchrun, *command = job["spec"]["trainer"]["command"]
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        *command], check=True, env=os.environ, capture_output=True)

    monkeypatch.setattr(trainjob, "run", cluster)
    spec = launch.spec("cpt", base, data, "", TrainConfig(max_steps=4, batch_size=4).model_dump(),
                       checkpoint_uri=f"s3://{bucket}/checkpoints/cpt/1cb2912e03f2d111", data_id="fingerprint")
    out = f"s3://{bucket}/pipeline-root/train-cpt/model"
    result = stage.train_on_cluster("cpt", spec, nodes=2, gpus=1, node_selector={"pool": "h100"}, out_uri=out)
    assert result.steps == 4 and len(result.losses) == 4
    assert storage.exists(f"{out}/config.json") and storage.exists(f"{out}/model.safetensors")
    job = submitted[0]
    assert job["metadata"]["name"] == "seavl-cpt-1cb2912e03f2d111" and job["spec"]["trainer"]["numNodes"] == 2
    assert job["spec"]["trainer"]["command"][-1] == f"s3://{bucket}/checkpoints/cpt/1cb2912e03f2d111/job/spec.json"
    # what the nodes cannot reach is refused before anything is submitted
    with pytest.raises(ValueError, match="checkpoint_root on S3"):
        stage.train_on_cluster("cpt", {**spec, "checkpoint_uri": str(tmp_path / "ckpt")}, 2, 1, {}, out)
    with pytest.raises(ValueError, match="the model output"):
        stage.train_on_cluster("cpt", spec, 2, 1, {}, str(tmp_path / "model"))
