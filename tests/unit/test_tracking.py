"""The tracking wrapper: the run layout, what it logs, reused steps, KFP's injected runs, and failing fast."""
import uuid
from pathlib import Path

import pytest

from components.common import tracking
from components.common.tracking import Logged, tracked_step


@pytest.fixture()
def kfp_run(local_mlflow, monkeypatch):
    """A KFP run id in the environment, as a pod or `seavl run` has it, and its pipeline run."""
    run_id = uuid.uuid4().hex
    monkeypatch.setenv(tracking.RUN_ID_ENV, run_id)
    return tracking.open_pipeline_run("unit-tracking", f"run-{run_id[:6]}")


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def test_a_step_run_nests_under_its_pipeline_run_and_holds_what_the_step_returned(kfp_run, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "r.md").write_text("# hi")
    with tracked_step("cpt") as step:
        for i in (1, 2, 3):
            step.log_metrics({"train/loss": 1.0 / i}, i)
        step.record(Logged(params={"lr": 0.1, "long": "x" * 7000}, metrics={"own": 1.0},
                           pipeline_metrics={"cpt/final_loss": 0.33}, tags={"t": "v"}, artifacts={"report": report}))
    client = _client()
    run = client.get_run(step.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == kfp_run
    assert run.data.tags["kfp.step"] == "cpt" and run.data.tags["t"] == "v"
    assert run.data.params["lr"] == "0.1" and len(run.data.params["long"]) == 6000
    assert run.data.metrics == {"train/loss": pytest.approx(1 / 3), "own": 1.0, "cpt/final_loss": 0.33}
    assert [m.step for m in client.get_metric_history(step.run_id, "train/loss")] == [1, 2, 3]
    assert {a.path for a in client.list_artifacts(step.run_id)} == {"report", tracking.PIPELINE_METRICS_FILE}
    # only the pipeline metrics reach the pipeline run
    assert client.get_run(kfp_run).data.metrics == {"cpt/final_loss": 0.33}
    assert not (Path(step.log_metrics.path)).exists()  # the buffer is gone once everything was sent


def test_a_failing_step_is_failed_and_keeps_what_its_error_carries(kfp_run, tmp_path):
    class Broken(ValueError):
        logged = Logged(metrics={"data/critical_failed": 2.0})

    with pytest.raises(Broken), tracked_step("validate_data") as step:
        raise Broken("bad rows")
    run = _client().get_run(step.run_id)
    assert run.info.status == "FAILED" and run.data.metrics == {"data/critical_failed": 2.0}


def test_steps_served_from_the_cache_are_linked_and_their_metrics_copied(kfp_run, monkeypatch):
    with tracked_step("sft") as earlier:
        earlier.record(Logged(pipeline_metrics={"sft/final_loss": 0.5}))
    # a later KFP run whose sft task was a cache hit: it gets the earlier run id as the task's output
    monkeypatch.setenv(tracking.RUN_ID_ENV, uuid.uuid4().hex)
    later = tracking.open_pipeline_run("unit-tracking", "later")
    with tracked_step("compare") as now:
        now.record(Logged(metrics={"x": 1.0}))
    reused = tracking.record_pipeline_run([earlier.run_id, now.run_id, ""])
    assert reused == {"sft": earlier.run_id}
    run = _client().get_run(later)
    assert run.data.tags["seavl.reused.sft"] == earlier.run_id and run.data.metrics == {"sft/final_loss": 0.5}
    assert tracking.finish_pipeline_run("SUCCEEDED") == "FINISHED"
    assert _client().get_run(later).info.status == "FINISHED"


def test_the_run_kfp_injects_is_the_step_run(local_mlflow, monkeypatch):
    """KFP's MLflow integration: a pipeline run (tagged with the KFP run id), a run per DAG, a run per task
    named in MLFLOW_RUN_ID. The step logs into that task run; pipeline metrics reach the pipeline run."""
    client = _client()
    exp = tracking.ensure_experiment(client, "unit-kfp-mlflow")
    pipeline = client.create_run(exp, run_name="kfp-run", tags={tracking.PIPELINE_RUN_TAG: "kfp-123"}).info.run_id
    dag = client.create_run(exp, run_name="exit-handler-1", tags={"mlflow.parentRunId": pipeline}).info.run_id
    task = client.create_run(exp, run_name="train-cpt", tags={"mlflow.parentRunId": dag}).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", task)
    monkeypatch.delenv(tracking.RUN_ID_ENV, raising=False)
    with tracked_step("cpt") as step:
        step.record(Logged(pipeline_metrics={"cpt/final_loss": 0.25}))
    assert step.run_id == task and step.pipeline_run_id == pipeline
    assert client.get_run(task).data.tags["kfp.step"] == "cpt"
    assert client.get_run(pipeline).data.metrics == {"cpt/final_loss": 0.25}
    # an injected run with no tagged ancestor still finds the pipeline run by the KFP run id
    lone = client.create_run(exp, run_name="train-sft").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", lone)
    monkeypatch.setenv(tracking.RUN_ID_ENV, "kfp-123")
    with tracked_step("sft") as step:
        pass
    assert step.run_id == lone and step.pipeline_run_id == pipeline
    monkeypatch.setenv("MLFLOW_RUN_ID", task)
    # closing the pipeline run is the platform's job: the exit handler only records the final state
    assert tracking.finish_pipeline_run("FAILED") == "FAILED"
    run = client.get_run(pipeline)
    assert run.data.tags["kfp.final_state"] == "FAILED" and run.info.status == "RUNNING"


@pytest.mark.timeout(60)
def test_an_unreachable_tracking_server_fails_at_once_naming_it(monkeypatch):
    from typer.testing import CliRunner

    from pipelines.cli import app
    from tests.conftest import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(tracking.TrackingUnavailable, match=f"{uri} .*cannot be reached"):
        tracking.check_reachable(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2 and uri in result.output and "cannot be reached" in result.output
    with pytest.raises(tracking.TrackingUnavailable), tracked_step("validate_data"):
        pass
