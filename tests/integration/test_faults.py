"""Uploads under S3 faults, and a step killed while it writes its output.

A fault-injecting proxy (tests/support/faults.py) stands between the clients and the S3 server: 503 SlowDown
answers, connections reset before and after the server did the write, answers held past the client's read
timeout, outages, and a write held until its client is killed. Checkpoints and trained models go from the
trainer to S3 through it; model versions go from the MLflow server to S3 through it.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.conftest import MlflowServer, bucket_keys, make_bucket
from tests.support.faults import FaultyProxy
from tests.support.weights import assert_same_weights, load_weights

pytestmark = pytest.mark.integration

SEAVL = [sys.executable, "-m", "pipelines.cli"]


def _described(counts) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


@pytest.fixture()
def proxy(s3_server, monkeypatch):
    """The fault proxy in front of the session's S3 server; this process's S3 clients (and the processes it
    starts) go through it, with a 1.5 s read timeout so that a held answer is a timeout, and 3 attempts."""
    p = FaultyProxy(s3_server, every=3, slow_s=3.0)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", p.endpoint)
    monkeypatch.setenv("SEAVL_S3_READ_TIMEOUT", "1.5")
    monkeypatch.setenv("SEAVL_S3_MAX_ATTEMPTS", "3")    # an outage surfaces in seconds
    yield p
    p.close()


def test_checkpoints_upload_through_s3_faults_and_an_outage_costs_only_the_steps_since_the_last_one(
        demo, curated, proxy, s3_server, tmp_path, figure):
    """Every third upload to S3 meets a fault (503, reset before or after the write, an answer held past the read
    timeout): each is retried and training ends as it would have. Then an outage that outlasts the retries hits
    the step-4 checkpoint: the run stops naming it, nothing of step 4 is left, the step-2 checkpoint is intact,
    and once S3 is back the same run resumes there and ends with the same weights."""
    from components.train import recipes
    from components.train.checkpoints import CheckpointWriteError
    from components.train.loop import TrainConfig

    bucket = make_bucket(s3_server)
    cfg = TrainConfig(max_steps=5, batch_size=8, checkpoint_every=2, keep_checkpoints=2, warmup_steps=2,
                      save_dtype="fp32", log_every=1)
    started = time.perf_counter()
    faulty = recipes.cpt(demo.base_model, curated, tmp_path / "a", cfg, checkpoint_uri=f"s3://{bucket}/a")
    seconds = time.perf_counter() - started
    injected = dict(proxy.counts)
    assert faulty.steps == 5 and {"error", "reset", "lost", "slow"} <= set(injected), injected
    keys = bucket_keys(s3_server, bucket, "a/")
    assert {k.split("/")[1] for k in keys} == {"step-00000002", "step-00000004"}
    assert {"a/step-00000002/COMPLETE", "a/step-00000004/COMPLETE"} <= set(keys)

    def outage_from_step_3(metrics, step):
        if step == 3:
            proxy.outage()

    with pytest.raises(CheckpointWriteError, match="checkpoint step 4 could not be written") as failed:
        recipes.cpt(demo.base_model, curated, tmp_path / "b", cfg, outage_from_step_3,
                    checkpoint_uri=f"s3://{bucket}/b")
    outage = proxy.counts["outage"]
    proxy.restore()
    assert "the last complete checkpoint, step 2, is intact" in str(failed.value)
    assert [k for k in bucket_keys(s3_server, bucket, "b/") if "step-00000004" in k] == []
    assert not (tmp_path / "b").exists()
    started = time.perf_counter()
    resumed = recipes.cpt(demo.base_model, curated, tmp_path / "b", cfg, checkpoint_uri=f"s3://{bucket}/b")
    assert resumed.steps == 5
    assert_same_weights(load_weights(tmp_path / "a"), load_weights(tmp_path / "b"))
    figure(f"checkpoints to S3, every third upload faulted: {sum(injected.values())} faults ({_described(injected)}) "
           f"all retried, 5 steps in {seconds:.0f} s; an outage at the step-4 checkpoint (refused {outage} "
           f"attempts) stopped the run; it lost the 2 steps since step 2, the resume ran steps 3-5 in "
           f"{time.perf_counter() - started:.0f} s and ended with the same weights")


@pytest.fixture()
def faulty_tracking(s3_server, tmp_path, monkeypatch):
    """An MLflow server whose artifact store is reached through the fault proxy (every third write faulted),
    its clients retrying little so that an outage surfaces in seconds."""
    p = FaultyProxy(s3_server, every=3, kinds=("error", "reset", "lost"))
    bucket = make_bucket(s3_server)
    (tmp_path / "mlflow").mkdir()
    server = MlflowServer(tmp_path / "mlflow", bucket)
    with monkeypatch.context() as m:
        m.setenv("MLFLOW_S3_ENDPOINT_URL", p.endpoint)
        m.setenv("AWS_ENDPOINT_URL_S3", p.endpoint)
        m.setenv("AWS_RETRY_MODE", "standard")
        m.setenv("AWS_MAX_ATTEMPTS", "3")
        server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    yield server, p
    server.stop()
    p.close()


def test_model_versions_upload_through_s3_faults_and_an_outage_leaves_no_version(demo, faulty_tracking, tmp_path,
                                                                              figure):
    """Every third write from the tracking server to S3 is faulted: the version is registered, and its download
    passes its checksums. An outage during the upload fails the registration: the logged model is FAILED and
    the registry has no version; after the outage the same weights register, uploaded anew and whole."""
    from mlflow.entities import LoggedModelStatus
    from mlflow.tracking import MlflowClient

    from components.common import storage, tracking, vlm_pyfunc
    from components.register.core import flavor_files

    server, proxy = faulty_tracking
    client = MlflowClient()
    run_id = client.create_run(tracking.ensure_experiment(client, "faults")).info.run_id
    weights = Path(demo.base_model)
    sums = vlm_pyfunc.checksums(weights)
    tags = {"weights_fingerprint": "f" * 64}
    files = flavor_files(tmp_path / "model", sums, "# card\n", tags)

    def register(name: str) -> str:
        return tracking.log_model_version(name, run_id, weights, files, tags, {"eval/seahelm/total": 1.0}, "faults",
                                          identity="weights_fingerprint")

    assert register("under-faults") == "1"
    injected = dict(proxy.counts)
    assert {"error", "reset", "lost"} <= set(injected), injected
    folder = storage.localize("models:/under-faults/1", tmp_path / "pulled")   # checksums checked on download
    assert_same_weights(load_weights(folder), load_weights(weights))

    client.set_experiment_tag(client.get_run(run_id).info.experiment_id, "cleared", "1")
    tags["weights_fingerprint"] = "e" * 64          # other weights: no READY upload to reuse
    proxy.outage()
    with pytest.raises(Exception) as failed:
        register("during-outage")
    refused = proxy.counts["outage"]
    proxy.restore()
    assert "500" in str(failed.value) or "error" in str(failed.value).lower()
    assert client.search_model_versions("name='during-outage'") == []
    experiment = client.get_run(run_id).info.experiment_id
    attempts = client.search_logged_models([experiment], filter_string=f"tags.`weights_fingerprint` = '{'e' * 64}'")
    assert [m.status for m in attempts] == [LoggedModelStatus.FAILED]
    assert register("during-outage") == "1"
    source = client.get_model_version("during-outage", "1").source
    assert source != f"models:/{attempts[0].model_id}"    # the failed upload is never registered
    storage.localize("models:/during-outage/1", tmp_path / "pulled-2")
    figure(f"model versions through the tracking server with every third S3 write faulted: {sum(injected.values())} "
           f"faults ({_described(injected)}) all retried; an outage ({refused} writes refused) left a FAILED logged "
           f"model and no version")


def test_a_training_step_killed_while_it_uploads_its_model_leaves_nothing_the_next_step_takes(
        demo, curated, proxy, s3_server, tmp_path, figure):
    """`seavl train --out s3://...` is killed (SIGKILL) while the weights upload: the folder on S3 lacks
    config.json, which is published last, so the next stage refuses it by name. Run again, the step completes
    and its model is taken."""
    from components.common import storage
    from components.common.models import check_weights

    bucket = make_bucket(s3_server)
    out = f"s3://{bucket}/cpt/model"
    cmd = [*SEAVL, "train", "cpt", "--init-model", demo.base_model, "--data", curated, "--out", out,
           "--set", "max_steps=2", "--set", "batch_size=8", "--set", "warmup_steps=1"]
    proxy.every = 10 ** 9        # no other fault
    proxy.hang_on("model.safetensors")
    job = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert proxy.held.wait(240), "the upload of the weights never started"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    written = bucket_keys(s3_server, bucket, "cpt/model/")
    assert written and "cpt/model/config.json" not in written and "cpt/model/model.safetensors" not in written
    nxt = subprocess.run([*SEAVL, "train", "sft", "--init-model", out, "--data", curated, "--out",
                          str(tmp_path / "sft"), "--set", "max_steps=1"], capture_output=True, text=True)
    assert nxt.returncode == 2 and "has no config.json" in nxt.stderr and "Traceback" not in nxt.stderr
    assert not (tmp_path / "sft").exists()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    check_weights(storage.localize(out))
    meta = boto3.client("s3", endpoint_url=s3_server).head_object(Bucket=bucket, Key="cpt/model/config.json")
    assert meta["ContentLength"] > 0
    figure(f"training killed during its model upload: {len(written)} of the folder's files were on S3, no "
           f"config.json; the next stage refused it by name")

