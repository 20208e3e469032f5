"""Real tracking servers that misbehave: one that refuses the credentials, one that goes away mid-step."""
import time
import uuid

import pytest

from components.common import tracking

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_wrong_credentials_fail_at_once_naming_the_server(s3_server, tmp_path, monkeypatch):
    from tests.conftest import MlflowServer, make_bucket

    server = MlflowServer(tmp_path, make_bucket(s3_server), admin_password="right-Password-1")
    server.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(tracking.TrackingUnavailable, match=f"{server.uri} refused the credentials"):
            tracking.check_reachable(server.uri)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "right-Password-1")
        tracking.check_reachable(server.uri)
    finally:
        server.stop()


@pytest.mark.timeout(300)
def test_metrics_logged_while_the_server_is_down_are_replayed_when_it_is_back(tracking_server, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(tracking.RUN_ID_ENV, uuid.uuid4().hex)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")   # give up on a dead server within seconds,
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")  # so the test does not wait for backoff
    tracking.open_pipeline_run("it-outage", "outage")
    with tracking.tracked_step("cpt") as step:
        step.log_metrics({"train/loss": 3.0}, 1)
        deadline = time.time() + 30
        while step.log_metrics.pending() and time.time() < deadline:  # the first value reaches the server
            time.sleep(0.2)
        assert step.log_metrics.pending() == 0
        tracking_server.stop()
        for i in (2, 3, 4):
            step.log_metrics({"train/loss": 3.0 / i}, i)  # no error reaches the training loop
        time.sleep(2)  # the sender tries, fails and keeps the values on disk
        assert step.log_metrics.pending() == 3
        tracking_server.start()
    history = MlflowClient(tracking_server.uri).get_metric_history(step.run_id, "train/loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
        [(1, 3.0), (2, 1.5), (3, 1.0), (4, 0.75)]
