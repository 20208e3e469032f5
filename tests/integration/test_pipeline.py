"""The whole DAG through kfp.local against a real MLflow server whose artifacts live in an S3 bucket."""
import os

import pytest

from tests.conftest import bucket_keys

pytestmark = pytest.mark.integration


def _run_pipeline(args: dict, root, monkeypatch):
    import kfp.local

    from pipelines.sealion_vl import sealion_vl

    monkeypatch.setenv("SEAVL_HOME", str(root))
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "pipeline_root"),
                   enable_caching=False)
    return sealion_vl(**args)


def _demo_args(demo, experiment: str) -> dict:
    from pipelines.cli import DEFAULT_CONFIG, load_arguments

    args = load_arguments(DEFAULT_CONFIG, [], demo.root)
    args.update(mlflow_experiment=experiment, git_commit="test-commit")
    return args


def test_whole_pipeline_registers_a_champion_that_learned(demo, mlflow_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from pipelines import results

    args = _demo_args(demo, "it-pipeline")
    _run_pipeline(args, tmp_path, monkeypatch)

    res = results.latest("it-pipeline")
    client = MlflowClient(mlflow_server["uri"])
    name = args["registered_model_name"]
    mv = client.get_model_version(name, res.version)
    assert res.version == "1"
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert mv.tags["git_commit"] == "test-commit" and mv.tags["base_model"] == args["base_model"]
    assert len(mv.tags["data_fingerprint"]) == 64 and mv.tags["pipeline_run_id"]
    assert mv.tags["gate.promote"] == "true"

    # the demo learns: CPT raises captioning in every language, SFT raises multiple choice over CPT
    base, cpt, cand = res.scores["base"], res.scores["cpt"], res.scores["candidate"]
    langs = ["en", "id", "ms", "th", "vi", "tl", "zh", "ta"]
    for lang in langs:
        assert cpt[f"demo_captions/{lang}/cider"] > base[f"demo_captions/{lang}/cider"], lang
        assert cand[f"demo_captions/{lang}/cider"] > base[f"demo_captions/{lang}/cider"], lang
    assert cand["summary/multiple_choice"] > cpt["summary/multiple_choice"]
    assert cand["summary/text"] >= base["summary/text"] - args["text_tolerance"]

    # one parent run with a nested run per step, all finished
    parent = client.get_run(res.parent_run_id)
    assert parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{res.parent_run_id}'")
    assert sorted(c.data.tags["kfp.step"] for c in children) == [
        "cpt", "evaluate", "promote", "register", "sft", "validate_data"]
    cpt_run = next(c for c in children if c.data.tags["kfp.step"] == "cpt")
    assert {"train/loss", "train/lr", "train/samples_per_s"} <= set(cpt_run.data.metrics)
    assert "eval/candidate/demo_captions/th/cider" in parent.data.metrics

    # the registered weights are in the bucket, beside the report and the Data Docs
    keys = bucket_keys(os.environ["MLFLOW_S3_ENDPOINT_URL"], mlflow_server["bucket"], "mlflow/")
    model_files = [k for k in keys if "/artifacts/model/" in k]
    assert any(k.endswith("model.safetensors") for k in model_files)
    assert any(k.endswith("processor_config.json") for k in model_files)
    assert any(k.endswith("report/report.html") for k in keys)
    assert any("/data_docs/" in k for k in keys)
    # and the version's source points at those files
    assert mv.source.endswith("/artifacts/model")


def test_bad_manifest_stops_the_pipeline_before_training(demo, tmp_path, monkeypatch, local_mlflow):
    import json
    import shutil
    from pathlib import Path

    src = Path(demo.captions)
    rows = [json.loads(line) for line in src.read_text().splitlines()[:20]]
    for r in rows:
        (tmp_path / "data" / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src.parent / r["image"], tmp_path / "data" / r["image"])
    rows[0]["lang"] = "klingon"
    manifest = tmp_path / "data" / "bad.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = _demo_args(demo, "it-bad-data")
    args["caption_manifest"] = str(manifest)
    with pytest.raises(RuntimeError):
        _run_pipeline(args, tmp_path, monkeypatch)
    run_dirs = list((tmp_path / "pipeline_root").glob("sealion-vl-*"))
    assert len(run_dirs) == 1
    started = {p.name for p in run_dirs[0].iterdir()}
    assert "validate-data" in started and not {"train-cpt", "train-sft", "evaluate", "register"} & started
    # the parent MLflow run is marked failed
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name("it-bad-data")
    runs = client.search_runs([exp.experiment_id])
    assert {r.data.tags.get("kfp.step") for r in runs} == {None, "validate_data"}
    assert all(r.info.status == "FAILED" for r in runs)
