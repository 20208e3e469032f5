"""The whole DAG through kfp.local against a real MLflow server whose artifacts live in an S3 bucket.

The demo pipeline runs four times, once for the session, with caching on: fresh; again with unchanged inputs;
again with skip_if_unchanged; and again after one caption in the manifest changed. The tests read what each run
left in MLflow.
"""
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from components.common.languages import LANGUAGES
from tests.conftest import bucket_keys

pytestmark = pytest.mark.integration


def _demo_args(demo, experiment: str) -> dict:
    from pipelines.cli import DEFAULT_CONFIG, load_arguments

    args = load_arguments(DEFAULT_CONFIG, [], demo.root)
    args.update(mlflow_experiment=experiment, git_commit="test-commit")
    return args


# Credentials planted in the steps' environment: none may reach an output (they are never needed here: the
# tracking server takes no login, and the steps reach S3 only through it)
PLANTED = {"MLFLOW_TRACKING_USERNAME": "planted-user-4k2q", "MLFLOW_TRACKING_PASSWORD": "planted-password-8x1m",
           "HF_TOKEN": "planted-hf-token-3j7v", "KFP_TOKEN": "planted-kfp-token-6c9w"}


@pytest.fixture(scope="session")
def pipeline_home(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline")


@contextmanager
def _output_to(path: Path):
    """Everything written to this process's stdout and stderr, and to those of the processes it starts (kfp.local
    runs each step as one), goes to `path` as well as being shown afterwards."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2), sys.stdout, sys.stderr)
    with open(path, "ab", buffering=0) as f, open(f.fileno(), "w", closefd=False, buffering=1) as text:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        sys.stdout = sys.stderr = text
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sys.stdout, sys.stderr = saved[2], saved[3]


@pytest.fixture(scope="session")
def pipeline_runs(demo, mlflow_server, pipeline_home):
    """{"fresh" | "cached" | "skipped" | "changed": (KFP run id, seconds)} of four runs with caching on. The
    caption manifest is a copy (with its images), so that one caption can change in place between runs. Weight
    files from 1 MiB up go to S3 in parts (MLflow's proxied multipart upload; 500 MiB by default)."""
    from pipelines.local import run_pipeline

    root = pipeline_home
    data = root / "data"
    shutil.copytree(demo.root / "data" / "images" / "cpt", data / "images" / "cpt")
    shutil.copy(demo.captions, data / "captions.jsonl")
    args = _demo_args(demo, "it-pipeline")
    args["caption_manifest"] = str(data / "captions.jsonl")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
        mp.setenv("SEAVL_HOME", str(root / "seavl"))
        mp.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1 << 20))
        for key, value in PLANTED.items():
            mp.setenv(key, value)
        for name in ("fresh", "cached", "skipped", "changed"):
            if name == "changed":
                lines = (data / "captions.jsonl").read_text(encoding="utf-8").splitlines()
                first = json.loads(lines[0])
                first["caption"] = first["caption"].upper()
                lines[0] = json.dumps(first, ensure_ascii=False)
                (data / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            started = time.perf_counter()
            with _output_to(root / f"{name}.log"):    # the steps' logs, scanned for credentials
                run_id = run_pipeline({**args, "skip_if_unchanged": name == "skipped"}, cache=True)
            runs[name] = (run_id, time.perf_counter() - started)
    print(f"\npipeline wall time: fresh {runs['fresh'][1]:.0f} s, unchanged rerun {runs['cached'][1]:.0f} s "
          f"(ratio {runs['cached'][1] / runs['fresh'][1]:.2f}), after a caption changed {runs['changed'][1]:.0f} s")
    return runs


def _steps(client, parent_run_id: str) -> dict:
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return {c.data.tags["kfp.step"]: c for c in children}


def _runs_of_step(client, step: str) -> list:
    exp = client.get_experiment_by_name("it-pipeline")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`kfp.step` = '{step}'")


def test_fresh_run_registers_a_champion_that_learned(pipeline_runs, tracking_server, tmp_path):
    from mlflow.tracking import MlflowClient

    from pipelines import results

    res = results.for_run(pipeline_runs["fresh"][0])
    client = MlflowClient(tracking_server.uri)
    name = "sealion-vl-demo"
    mv = client.get_model_version(name, res.version)
    assert res.version == "1" and res.reused == {}
    assert mv.tags["git_commit"] == "test-commit" and mv.tags["base_model"].endswith("base-model")
    assert len(mv.tags["data_fingerprint"]) == 64 and mv.tags["pipeline_run_id"] == pipeline_runs["fresh"][0]
    assert len(mv.tags["base_fingerprint"]) == 64 and mv.tags["gate.promote"] == "true"
    assert len(mv.tags["weights_fingerprint"]) == 64

    # the demo runs through SEA-HELM's tasks and learns: training raises the vision score (XM3600's
    # RefCLIPScore with the demo's judge), the text score stays within the gate's limit, and the trained
    # models are far above the reference model (the tiny model before any training)
    base, cpt, cand = res.scores["base"], res.scores["cpt"], res.scores["candidate"]
    ref = res.scores["tiny-untrained"]
    assert cpt["overall/vision"] > base["overall/vision"] and cand["overall/vision"] > base["overall/vision"]
    assert cand["overall/text"] >= base["overall/text"] - 6.0  # the demo's gate: text_regression 6
    assert cand["seahelm/total"] > ref["seahelm/total"] + 20
    langs = {k.split("/")[1] for k in cand if k.startswith("seahelm/") and k.endswith("/score")}
    assert langs == set(LANGUAGES)  # the demo speaks every default language
    assert "champion" not in res.scores  # there was none to compare with

    # one pipeline run with a nested run per tracked step, all finished
    parent = client.get_run(res.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["kfp.final_state"] == "SUCCEEDED"
    assert parent.data.tags["lineage.caption_fingerprint"] and parent.data.tags["lineage.champion_version"] == ""
    steps = _steps(client, res.parent_run_id)
    assert sorted(steps) == ["compare", "cpt", "evaluate-base", "evaluate-candidate", "evaluate-champion",
                             "evaluate-cpt", "evaluate-tiny-untrained", "promote", "register", "sft",
                             "validate_captions", "validate_conversations"]
    assert all(s.info.status == "FINISHED" for s in steps.values())
    history = client.get_metric_history(steps["cpt"].info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(10, 801, 10))  # streamed through the metric buffer
    assert {"cpt/final_loss", "data/rows_curated", "gate/promote", "eval/candidate/seahelm/total",
            "eval/candidate/xm3600/th/normalized_refclipscore", "eval/tiny-untrained/overall/text"} \
        <= set(parent.data.metrics)

    # the version is an MLflow model logged by the register step: its weights are in the bucket (uploaded in
    # parts: a multipart ETag), with the flavor files, checksums and the model card, beside the report
    from mlflow.entities import LoggedModelStatus

    assert mv.source.startswith("models:/m-")
    model_id = mv.source.removeprefix("models:/")
    logged = client.get_logged_model(model_id)
    assert logged.status == LoggedModelStatus.READY and logged.source_run_id == steps["register"].info.run_id
    attached = {m.key: m.value for m in logged.metrics}
    assert attached["eval/seahelm/total"] == pytest.approx(res.scores["candidate"]["seahelm/total"])
    endpoint = os.environ["MLFLOW_S3_ENDPOINT_URL"]
    keys = bucket_keys(endpoint, tracking_server.bucket, "mlflow/")
    model_files = sorted(k.split(f"/models/{model_id}/artifacts/", 1)[1] for k in keys
                         if f"/models/{model_id}/artifacts/" in k)
    assert {"MLmodel", "checksums.json", "README.md", "requirements.txt", "code/vlm_pyfunc.py",
            "weights/model.safetensors", "weights/config.json", "weights/processor_config.json"} <= set(model_files)
    import boto3

    weights_key = next(k for k in keys if k.endswith(f"/models/{model_id}/artifacts/weights/model.safetensors"))
    etag = boto3.client("s3", endpoint_url=endpoint).head_object(Bucket=tracking_server.bucket,
                                                                 Key=weights_key)["ETag"]
    assert etag.strip('"').endswith("-1")   # one part: the demo's weights are 2.4 MB, a part is 100 MB
    assert any(k.endswith("report/report.html") for k in keys)
    # lineage on the version: what it was made from, by which code, image and configuration
    assert mv.tags["image"] == "local" and len(mv.tags["config_hash"]) == 16
    assert mv.tags["training_fingerprint"] == parent.data.tags["lineage.training_fingerprint"]
    import mlflow

    card = Path(mlflow.artifacts.download_artifacts(f"{logged.artifact_location}/README.md", dst_path=str(tmp_path)))
    assert "## Evaluation (SEA-HELM, 0-100)" in card.read_text() and "| tiny-untrained |" in card.read_text()
    # the curated data is the runs' dataset input: metadata only, its fingerprint as digest, its row count
    for run in (parent, steps["cpt"]):
        captions = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}["curated-captions"]
        assert captions.digest == mv.tags["data_fingerprint"][:36]
        assert json.loads(captions.profile) == {
            "num_rows": int(steps["validate_captions"].data.metrics["data/rows_curated"])}
        columns = {c["name"]: c["type"] for c in json.loads(captions.schema)["mlflow_colspec"]}
        assert columns["caption"] == "string" and columns["sea_score"] == "double"
    # the pipeline run carries the run's parameters, for comparing runs in the MLflow UI
    assert parent.data.params["registered_model_name"] == name and parent.data.params["skip_if_unchanged"] == "false"

    # the release-style report: its aggregated table has every model's SEA-HELM total and language scores
    from tests.unit.test_evaluate import Tables

    page = Path(client.download_artifacts(steps["compare"].info.run_id, "report/report.html",
                                          str(tmp_path))).read_text(encoding="utf-8")
    tables = Tables()
    tables.feed(page)
    aggregate = {tuple(row[:2]): row[2:] for row in tables.tables["aggregate"]}
    assert aggregate[("language", "competency")] == ["candidate", "base", "cpt", "tiny-untrained"]
    assert aggregate[("total", "")] == [f"{res.scores[r]['seahelm/total']:.2f}"
                                        for r in ("candidate", "base", "cpt", "tiny-untrained")]
    assert {lang for lang, what in aggregate if what == "language score"} == set(LANGUAGES)
    assert ("th", "vision") in aggregate and ("th", "nlg") in aggregate
    # a header and one row per task and language: XM3600 6, CVQA 5, MARVL 3, WorldCuisines 5 + 5, translation 14
    assert len(tables.tables["tasks"]) == 1 + 38 and "Δ vs base" in tables.tables["tasks"][0]
    assert "<img alt='per-language scores'" in page and "a SEA-HELM subset" in page
    assert any("/data_docs/" in k for k in keys)


def test_the_champion_is_pulled_as_a_folder_transformers_loads_and_that_captions(pipeline_runs, tracking_server,
                                                                              demo, tmp_path):
    """`seavl pull models:/sealion-vl-demo@champion --out DIR` against the real tracking server (artifacts in S3):
    the folder loads with transformers and captions an evaluation image with SEA-HELM's XM3600 prompt."""
    import io
    import subprocess
    import sys

    from PIL import Image

    from components.common.models import load_vlm
    from components.evaluate import inference
    from components.evaluate.seahelm.tasks import conversation, xm3600

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server.uri}
    seavl = [sys.executable, "-m", "pipelines.cli"]
    out = tmp_path / "champion"
    r = subprocess.run([*seavl, "pull", "models:/sealion-vl-demo@champion", "--out", str(out)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "is version" in r.stdout and (out / "model.safetensors").exists()
    assert "## Training data" in (out / "README.md").read_text()   # the model card comes along
    model, processor = load_vlm(out)
    item = xm3600(f"{demo.eval_dir}/xm3600/en.parquet", "en")[0]
    picture = Image.open(io.BytesIO(item.image)).convert("RGB")
    [caption] = inference.generate(model, processor, [conversation("xm3600", "en", {}, [picture])], 24, 1)
    assert caption.strip()
    again = subprocess.run([*seavl, "pull", "models:/sealion-vl-demo@champion", "--out", str(out)], env=env,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "not an empty folder" in again.stderr
    missing = subprocess.run([*seavl, "pull", "models:/sealion-vl-demo@nobody", "--out", str(tmp_path / "x")],
                             env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "no such registered version" in missing.stderr


def test_the_champion_loads_through_mlflow_pyfunc_and_answers_a_request(pipeline_runs, tracking_server, demo):
    """`mlflow.pyfunc.load_model("models:/sealion-vl-demo@champion")` from the real server (artifacts in S3):
    rows of a prompt and an image, as bytes or as a URI, answered with generated text."""
    import mlflow
    import pandas as pd

    from components.evaluate.seahelm.tasks import xm3600

    model = mlflow.pyfunc.load_model("models:/sealion-vl-demo@champion")
    item = xm3600(f"{demo.eval_dir}/xm3600/en.parquet", "en")[0]
    prompt = "Write a short caption for this image in English."
    replies = model.predict(pd.DataFrame([{"prompt": prompt, "image": item.image},
                                          {"prompt": "Translate to Indonesian: the red circle"}]),
                            params={"max_new_tokens": 16})
    assert len(replies) == 2 and replies[0].strip() and replies[1].strip()


def test_rerun_with_unchanged_inputs_trains_nothing_and_still_reports(pipeline_runs, tracking_server):
    from mlflow.tracking import MlflowClient

    from pipelines import results

    client = MlflowClient(tracking_server.uri)
    fresh, cached = results.for_run(pipeline_runs["fresh"][0]), results.for_run(pipeline_runs["cached"][0])
    fresh_steps = _steps(client, fresh.parent_run_id)
    # KFP served validation, both trainings and the four evaluations from its cache: linked, not repeated
    assert cached.reused == {step: fresh_steps[step].info.run_id for step in
                             ("validate_captions", "validate_conversations", "cpt", "sft", "evaluate-base",
                              "evaluate-cpt", "evaluate-candidate", "evaluate-tiny-untrained")}
    assert set(_steps(client, cached.parent_run_id)) == {"evaluate-champion", "compare", "register", "promote"}
    # ... and it is a pipeline run of its own, with every score (copied from the reused runs)
    for role in ("base", "cpt", "candidate", "tiny-untrained"):
        assert cached.scores[role] == fresh.scores[role], role
    # the champion it was compared with is version 1, the same weights as its candidate
    assert cached.scores["champion"] == fresh.scores["candidate"]
    # the same weights (KFP served the same SFT model) are not registered twice: version 1 again, still challenger
    assert cached.version == "1" and client.get_run(cached.parent_run_id).info.status == "FINISHED"
    register = _steps(client, cached.parent_run_id)["register"]
    assert register.data.tags["registered.reused"] == "true"
    experiment = client.get_experiment_by_name("it-pipeline").experiment_id
    logged = client.search_logged_models(experiment_ids=[experiment])
    assert not [m for m in logged if m.source_run_id == register.info.run_id]   # nothing uploaded again
    assert pipeline_runs["cached"][1] < pipeline_runs["fresh"][1]  # a sanity check, not a speed claim


def test_a_run_with_skip_if_unchanged_trains_evaluates_and_registers_nothing_and_says_why(
        pipeline_runs, tracking_server, capsys):
    from mlflow.tracking import MlflowClient

    from pipelines import results
    from pipelines.cli import show_result

    client = MlflowClient(tracking_server.uri)
    skipped = results.for_run(pipeline_runs["skipped"][0])
    parent = client.get_run(skipped.parent_run_id)
    assert skipped.skipped.startswith("skipped: ") and "unchanged since champion version 1" in skipped.skipped
    assert parent.data.tags["seavl.skipped"] == "true" and parent.info.status == "FINISHED"
    assert parent.data.tags["lineage.training_fingerprint"] == \
        client.get_model_version("sealion-vl-demo", "1").tags["training_fingerprint"]
    assert _steps(client, skipped.parent_run_id) == {}   # no step ran: no validation, training, evaluation
    assert not skipped.scores and skipped.version == "?"
    show_result(pipeline_runs["skipped"][0])
    out = capsys.readouterr().out
    assert "skipped: the data, base model" in " ".join(out.split()) and "champion is still version 1" in out


def test_a_changed_caption_validates_and_trains_again(pipeline_runs, tracking_server):
    from mlflow.tracking import MlflowClient

    from pipelines import results

    client = MlflowClient(tracking_server.uri)
    fresh, changed = results.for_run(pipeline_runs["fresh"][0]), results.for_run(pipeline_runs["changed"][0])
    before, after = (client.get_run(r.parent_run_id).data.tags for r in (fresh, changed))
    assert before["lineage.caption_fingerprint"] != after["lineage.caption_fingerprint"]
    assert before["lineage.base_fingerprint"] == after["lineage.base_fingerprint"]
    # only the SFT data's validation and the evaluations of models that did not change could be reused: base,
    # reference, and the champion (still version 1, already evaluated by the cached rerun)
    assert set(changed.reused) == {"validate_conversations", "evaluate-base", "evaluate-tiny-untrained",
                                   "evaluate-champion"}
    for step in ("validate_captions", "cpt", "sft"):
        assert len(_runs_of_step(client, step)) == 2, step  # the fresh run's and this one's
    # new weights, so a new version (the cached rerun re-used version 1), and it is the challenger now
    assert changed.version == "2"
    assert client.get_model_version_by_alias("sealion-vl-demo", "challenger").version == "2"
    # the gate weighed it against the champion too, on the intervals of the differences
    reasons = client.get_model_version("sealion-vl-demo", "2").tags["gate.reasons"]
    assert "vs base, captioning (overall)" in reasons and "vs champion, text (overall)" in reasons


def test_compare_prints_the_last_runs_side_by_side_and_plots_them(pipeline_runs, tracking_server, tmp_path):
    import subprocess
    import sys

    from pipelines import results

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server.uri, "COLUMNS": "200"}
    seavl = [sys.executable, "-m", "pipelines.cli", "compare"]
    plot = tmp_path / "runs.png"
    r = subprocess.run([*seavl, "--last", "2", "--experiment", "it-pipeline", "--plot", str(plot)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    changed, skipped = (results.for_run(pipeline_runs[k][0]) for k in ("changed", "skipped"))
    assert changed.parent_run_id[:12] in r.stdout and skipped.parent_run_id[:12] in r.stdout
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in r.stdout.splitlines() if line.count("│") == 4}
    assert rows["decision"] == [f"v2, gate {changed.gate}", "skipped (unchanged)"]
    assert rows["param skip_if_unchanged"] == ["false", "true"]
    assert rows["seahelm/total"] == [f"{changed.scores['candidate']['seahelm/total']:.2f}", "–"]
    assert rows["xm3600/th"][0] == f"{changed.scores['candidate']['xm3600/th/normalized_refclipscore']:.2f}"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # runs named by MLflow or KFP id, in the order given; an unknown one is refused
    fresh = results.for_run(pipeline_runs["fresh"][0])
    r = subprocess.run([*seavl, fresh.parent_run_id, pipeline_runs["cached"][0], "--plot", str(plot)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.index(fresh.parent_run_id[:12]) < r.stdout.index("v1, gate")
    r = subprocess.run([*seavl, "no-such-run"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "no-such-run is neither" in r.stderr


def test_no_planted_credential_reaches_any_output(pipeline_runs, pipeline_home, mlflow_server, tracking_server):
    """Four runs with credentials in their environment: none is in the steps' logs, the pipeline root, the local
    state, the tracking server's store or any object in its artifact bucket (runs, parameters, tags, reports,
    models)."""
    import boto3

    needles = [v.encode() for v in [*PLANTED.values(), os.environ["AWS_SECRET_ACCESS_KEY"]]]
    logs = [pipeline_home / f"{name}.log" for name in pipeline_runs]
    assert logs[0].stat().st_size > 10_000           # the fresh run's steps said what they did
    scanned, found = 0, []
    for path in [*pipeline_home.rglob("*"), *mlflow_server.root.rglob("*")]:
        if path.is_file():
            scanned += 1
            data = path.read_bytes()
            found += [f"{path}: {n.decode()}" for n in needles if n in data]
    s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
    for key in bucket_keys(os.environ["MLFLOW_S3_ENDPOINT_URL"], tracking_server.bucket):
        scanned += 1
        data = s3.get_object(Bucket=tracking_server.bucket, Key=key)["Body"].read()
        found += [f"s3://{tracking_server.bucket}/{key}: {n.decode()}" for n in needles if n in data]
    assert scanned > 500 and found == []


def test_bad_manifest_stops_the_pipeline_before_training(demo, tmp_path, monkeypatch, local_mlflow):
    from mlflow.tracking import MlflowClient

    from pipelines.local import run_pipeline

    src = demo.root / "data"
    rows = [json.loads(line) for line in (src / "captions.jsonl").read_text().splitlines()[:20]]
    for r in rows:
        (tmp_path / "data" / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / r["image"], tmp_path / "data" / r["image"])
    for r in rows[:10]:
        r["lang"] = "klingon"   # half the rows: far more than the 10% a run may set aside
    manifest = tmp_path / "data" / "bad.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = _demo_args(demo, "it-bad-data")
    args["caption_manifest"] = str(manifest)
    with pytest.raises(RuntimeError):
        run_pipeline(args)
    run_dirs = list((tmp_path / "seavl" / "pipeline_root").glob("sealion-vl-*"))
    assert len(run_dirs) == 1
    started = {p.name for p in run_dirs[0].iterdir()}
    assert "merge-data" in started and not {"train-cpt", "train-sft", "register"} & started
    # the pipeline run and the validation run are marked failed; nothing was trained
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("it-bad-data").experiment_id])
    by_step = {r.data.tags.get("kfp.step"): r for r in runs}
    assert "validate_captions" in by_step and not {"cpt", "sft"} & set(by_step)
    assert by_step[None].info.status == "FAILED" and by_step["validate_captions"].info.status == "FAILED"
    # the failed run still holds every expectation's result and the reasons rows were set aside
    import mlflow

    run_id = by_step["validate_captions"].info.run_id
    validation = mlflow.artifacts.load_dict(f"runs:/{run_id}/validation.json")
    failed = [r["kwargs"].get("column") for r in validation["results"] if not r["success"]]
    assert "quarantined_fraction" in failed and validation["reasons"] == {"language_not_accepted": 10}
    assert any(a.path == "data_docs" for a in MlflowClient().list_artifacts(run_id))


def test_a_run_that_fails_its_checks_stops_at_its_first_step(demo, tmp_path, local_mlflow):
    """The checks run in the pipeline as its first step (preflight): a base model that the steps could not load
    stops the run there, named in the step's log, before the snapshot opens an MLflow run or any data is read."""
    from mlflow.tracking import MlflowClient

    from pipelines.local import run_pipeline

    pickle_only = tmp_path / "pickle-only"
    shutil.copytree(demo.root / "base-model", pickle_only)
    (pickle_only / "model.safetensors").rename(pickle_only / "pytorch_model.bin")
    args = _demo_args(demo, "it-preflight")
    args["base_model"] = str(pickle_only)
    log = tmp_path / "run.log"
    with pytest.raises(RuntimeError), _output_to(log):
        run_pipeline(args)
    run_dirs = list((tmp_path / "seavl" / "pipeline_root").glob("sealion-vl-*"))
    assert len(run_dirs) == 1
    started = {p.name for p in run_dirs[0].iterdir()}
    assert "preflight" in started and not {"snapshot", "plan-data", "train-cpt"} & started, started
    text = log.read_text()
    assert f"model base_model={pickle_only}: {pickle_only} has no .safetensors weights: it holds only pickle weights" \
        in text, text[-3000:]
    assert "| **FAILED** |" in text   # the step's report, also its Markdown output in the UI
    assert MlflowClient().get_experiment_by_name("it-preflight") is None   # no pipeline run was opened
