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
def test_metrics_logged_while_the_server_is_down_are_replayed_when_it_is_back(tracking_server, monkeypatch, demo,
                                                                               curated, tmp_path, figure):
    """The tracking server is stopped after training's second step and comes back only after its last: training
    goes on undisturbed, its metrics wait on local disk, and every one of them reaches the run once the server
    is back."""
    from mlflow.tracking import MlflowClient

    from components.train import recipes
    from components.train.loop import TrainConfig

    monkeypatch.setenv(tracking.RUN_ID_ENV, uuid.uuid4().hex)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")   # give up on a dead server within seconds,
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")  # so the test does not wait for backoff
    tracking.open_pipeline_run("it-outage", "outage")
    reported, per_step = {}, set()
    with tracking.tracked_step("cpt") as step:
        def log(metrics, n):
            reported[n] = metrics["train/loss"]
            per_step.add(len(metrics))
            step.log_metrics(metrics, n)
            if n == 2:
                deadline = time.time() + 30
                while step.log_metrics.pending() and time.time() < deadline:  # steps 1-2 reach the server
                    time.sleep(0.2)
                assert step.log_metrics.pending() == 0
                tracking_server.stop()

        started = time.perf_counter()
        result = recipes.cpt(demo.base_model, curated, tmp_path / "model", TrainConfig(
            max_steps=6, batch_size=8, warmup_steps=2, log_every=1), log)
        down = time.perf_counter() - started
        assert result.steps == 6 and (tmp_path / "model" / "config.json").exists()
        time.sleep(2)  # the sender tries, fails and keeps the values on disk
        waiting = step.log_metrics.pending()
        assert len(per_step) == 1 and waiting == 4 * per_step.pop()     # steps 3-6, every metric of each
        tracking_server.start()
    history = MlflowClient(tracking_server.uri).get_metric_history(step.run_id, "train/loss")
    assert {m.step: m.value for m in history} == pytest.approx(reported) and sorted(reported) == [1, 2, 3, 4, 5, 6]
    figure(f"tracking server down from step 2 to the end of training: the 6 steps took {down:.0f} s, {waiting} "
           f"values (4 steps' metrics) waited on disk and all arrived once it was back")
