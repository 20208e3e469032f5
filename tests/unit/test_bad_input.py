"""Bad input to every `seavl` command that takes any: CLI arguments, configuration YAML, --set values, manifests
and shards, evaluation data, model folders, checkpoint folders and registry names. Each case is refused with exit
status 2 and an `error:` line (or click's usage error) naming what is wrong (the key, the file or the value), with
no traceback, and the test's folder, where --out points, holds nothing new afterwards.

Every case runs the real command in this process on small real files (the demo's tiny model where a model is
needed, a local sqlite MLflow registry for registry names); none reaches training, generation or a pipeline run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from pipelines.cli import DEFAULT_CONFIG, app
from tests.support import corpus, seahelm

REGISTERED = "sealion-vl-demo"


@pytest.fixture(scope="module")
def inputs(demo, tmp_path_factory) -> SimpleNamespace:
    """Every bad (and the few good) inputs the cases point at, written once, outside the tests' own folders."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("inputs")

    def text(name: str, content: str | bytes) -> str:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    rows = corpus.image_manifest(root / "corpus", 6)
    i = SimpleNamespace(root=root, manifest=str(corpus.write_jsonl(root / "corpus" / "manifest.jsonl", rows)))
    i.list_yaml = text("list.yaml", "- min_sea_score\n- 0.3\n")
    i.broken_yaml = text("broken.yaml", "max_steps: [1, 2\n")
    i.unknown_parameter = text("unknown.yaml", "no_such_parameter: 1\n")
    i.not_jsonl = text("captions.jsonl", "id,image,caption,lang\nr1,a.jpg,Pasar malam di Jakarta,id\n")
    i.bad_parquet = text("captions.parquet", b"PAR1 these bytes are no Parquet file")
    corpus.shard(root / "shards" / "00000.tar", 0, 6, truncate_to=0.02)   # cut inside its first sample
    i.shards = str(root / "shards")
    # training data: captions (absolute image paths) and the demo's conversations
    i.captions = corpus.write_jsonl(root / "captions" / "train.jsonl",
                                    [{**r, "image": str(root / "corpus" / r["image"])} for r in rows])
    i.conversations = text("sft.jsonl", "".join((demo.root / "data" / "sft.jsonl").read_text().splitlines(True)[:4]))
    # evaluation data: a CVQA split in its public schema, one in no task's schema, suites, predictions
    i.cvqa = str(seahelm.cvqa(root / "eval" / "cvqa.parquet", [("id-1", "id", 0), ("id-2", "id", 1),
                                                               ("id-3", "id", 2)]))
    pq.write_table(pa.table({"question": ["Apa ini?"], "answer": ["nasi"]}), root / "eval" / "other.parquet")
    i.other_schema = str(root / "eval" / "other.parquet")
    i.predictions = text("eval/p.jsonl", "".join(json.dumps({"id": f"id-{n}", "response": "Jawaban: A"}) + "\n"
                                                 for n in (1, 2, 3)))
    i.predictions_not_jsonl = text("eval/replies.jsonl", "id-1\tJawaban: A\n")
    i.suite = text("eval/suite.yaml", f"tasks:\n  cvqa: {{data: {i.cvqa}, languages: [id]}}\nmax_new_tokens: 2\n")
    i.suite_unknown_task = text("eval/unknown-task.yaml", f"tasks:\n  cvqq: {{data: {i.cvqa}}}\n")
    i.suite_list = text("eval/list.yaml", "- cvqa\n- xm3600\n")
    i.suite_unknown_key = text("eval/unknown-key.yaml", f"tasks:\n  cvqa: {{data: {i.cvqa}}}\nbatchsize: 4\n")
    i.suite_other_schema = text("eval/other.yaml",
                                f"tasks:\n  cvqa: {{data: {i.other_schema}, languages: [id]}}\n")
    # model folders: pickle weights only; no config.json
    i.pickled = root / "pickled"
    i.pickled.mkdir()
    for f in Path(demo.base_model).iterdir():
        if f.suffix != ".safetensors":
            (i.pickled / f.name).write_bytes(f.read_bytes())
    (i.pickled / "pytorch_model.bin").write_bytes(b"never unpickled")
    i.no_config = root / "no-config"
    shutil.copytree(demo.base_model, i.no_config)
    (i.no_config / "config.json").unlink()
    # checkpoint folders: a complete checkpoint of another run; one whose trainer.json is corrupt
    identity = {"stage": "cpt", "init_model": "0123456789abcdef", "data": "s3://elsewhere/captions",
                "config": {}, "world_size": 1}
    for name, meta in (("other-run", json.dumps({"step": 10, "position": 10, "scheduler": {}, "identity": identity,
                                                 "world": 1})), ("corrupt", '{"step": 10, "position": ')):
        step = root / "checkpoints" / name / "step-00000010"
        step.mkdir(parents=True)
        (step / "trainer.json").write_text(meta)
        (step / "COMPLETE").write_text("")
    return i


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A local sqlite MLflow registry holding the model name REGISTERED and no version of it."""
    home = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEAVL_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        from components.common import tracking

        tracking.mlflow_client().create_registered_model(REGISTERED)
    return home


def _train(c, stage: str = "cpt", data: str | None = None, init_model: str | None = None) -> list[str]:
    return ["train", stage, "--init-model", init_model or c.demo.base_model, "--data", str(data or c.i.captions),
            "--out", c.out, "--set", "max_steps=1", "--set", "batch_size=2"]


def _evaluate(c, suite: str | None = None, model: str | None = None) -> list[str]:
    return ["evaluate", "--model", str(model or c.demo.base_model), "--suite", suite or c.i.suite, "--out", c.out]


def _score(c, task: str = "cvqa", data: str | None = None, predictions: str | None = None) -> list[str]:
    return ["score", "--task", task, "--lang", "id", "--data", data or c.i.cvqa, "--predictions",
            predictions or c.i.predictions]


def _pull(c, uri: str, out: str | None = None) -> list[str]:
    return ["pull", uri, "--out", out or c.out]


def _full_folder(c) -> str:
    """A folder that already holds a file: pull must leave it as it is."""
    (c.tmp / "mine").mkdir()
    (c.tmp / "mine" / "notes.txt").write_text("kept")
    return str(c.tmp / "mine")


# case id -> the command line and what its message must name (each a lambda of the case's context `c`);
# the registry-* cases run against the `registry` fixture
CASES = {
    # --- CLI arguments -----------------------------------------------------------------------------------------
    "cli-missing-required-option": lambda c: (["validate", c.i.manifest], ["Missing option '--out'"]),
    "cli-negative-workers": lambda c: (["validate", c.i.manifest, "--out", c.out, "--workers", "-1"],
                                       ["--workers must be at least 1, got -1"]),
    "cli-unknown-stage": lambda c: (_train(c, stage="dpo"), ["unknown stage 'dpo'"]),
    "cli-zero-processes": lambda c: ([*_train(c), "--processes", "0"], ["--processes must be at least 1, got 0"]),
    "cli-zero-gpus-evaluate": lambda c: ([*_evaluate(c), "--gpus", "0"], ["--gpus must be at least 1, got 0"]),
    "cli-unknown-backend": lambda c: ([*_evaluate(c), "--backend", "tensorrt"],
                                      ["unknown inference backend 'tensorrt'"]),
    "cli-zero-gpus-plan": lambda c: (["plan", "--gpus", "0"], ["--gpus must be at least 1, got 0"]),
    "cli-unknown-model-plan": lambda c: (["plan", "--model", "gemma-3-9b"], ["unknown model 'gemma-3-9b'"]),
    "cli-unknown-task-score": lambda c: (_score(c, task="cvqq"), ["unknown SEA-HELM task 'cvqq'"]),
    "cli-pipeline-root-not-a-uri": lambda c: (["compile", "-o", c.out + ".yaml", "--pipeline-root", "runs/root"],
                                              ["--pipeline-root must be a URI", "'runs/root'"]),
    "cli-compile-folder-missing": lambda c: (["compile", "-o", str(c.tmp / "nowhere" / "p.yaml")],
                                             [f"the folder {c.tmp / 'nowhere'} does not exist"]),
    "cli-malformed-cron": lambda c: (["schedule", "--host", "http://127.0.0.1:9", "--cron", "every day at 3"],
                                     ["bad cron expression 'every day at 3'"]),
    # --- configuration YAML ------------------------------------------------------------------------------------
    "config-yaml-not-a-mapping": lambda c: (["validate", c.i.manifest, "--out", c.out, "--config", c.i.list_yaml],
                                            [c.i.list_yaml, "must hold key: value settings, not a list"]),
    "config-yaml-unparseable": lambda c: ([*_train(c), "--config", c.i.broken_yaml],
                                          [c.i.broken_yaml, "is not valid YAML"]),
    "config-yaml-missing": lambda c: (["run", "--config", str(c.tmp / "nothere.yaml")],
                                      [f"{c.tmp / 'nothere.yaml'} does not exist"]),
    "config-unknown-parameter": lambda c: (["run", "--config", c.i.unknown_parameter],
                                           ["unknown pipeline parameter(s) ['no_such_parameter']"]),
    # --- --set values ------------------------------------------------------------------------------------------
    "set-unknown-key": lambda c: ([*_train(c), "--set", "learning_rat=1e-3"], ["learning_rat", "Extra inputs"]),
    "set-wrong-type": lambda c: (["validate", c.i.manifest, "--out", c.out, "--set", "min_sea_score=high"],
                                 ["min_sea_score", "valid number", "'high'"]),
    "set-not-key-value": lambda c: (["validate", c.i.manifest, "--out", c.out, "--set", "min_sea_score"],
                                    ["--set takes key=value, got 'min_sea_score'"]),
    "set-value-not-yaml": lambda c: (["validate", c.i.manifest, "--out", c.out, "--set", "languages=[en, id"],
                                     ["'languages=[en, id'", "not valid YAML"]),
    "set-unknown-nested-key-run": lambda c: (["run", "--config", str(DEFAULT_CONFIG), "--set",
                                              "cpt_training.learning_rat=1e-3"],
                                             ["pipeline parameter cpt_training", "learning_rat"]),
    "set-under-a-single-value-run": lambda c: (["run", "--config", str(DEFAULT_CONFIG), "--set", "train_gpus.count=2"],
                                               ["'train_gpus.count=2'", "train_gpus is 1, not a group of settings"]),
    "set-wrong-parameter-type-run": lambda c: (["run", "--config", str(DEFAULT_CONFIG), "--set", "train_gpus=many"],
                                               ["pipeline parameter train_gpus takes integer values, got 'many'"]),
    "set-unknown-gate-key-submit": lambda c: (["submit", "--host", "http://127.0.0.1:9", "--no-check-secret",
                                               "--param", "gate.base.text_regresion=1.0"],
                                              ["pipeline parameter gate", "text_regresion"]),
    # --- manifests and shards ----------------------------------------------------------------------------------
    "manifest-missing": lambda c: (["validate", str(c.tmp / "captions.jsonl"), "--out", c.out],
                                   [f"input {c.tmp / 'captions.jsonl'} does not exist"]),
    "manifest-not-jsonl": lambda c: (["validate", c.i.not_jsonl, "--out", c.out],
                                     [c.i.not_jsonl, "is not a JSONL manifest", "not JSON"]),
    "manifest-parquet-corrupt": lambda c: (["validate", c.i.bad_parquet, "--out", c.out],
                                           [c.i.bad_parquet, "is not a readable Parquet file"]),
    "shard-truncated-only": lambda c: (["validate", c.i.shards, "--out", c.out],
                                       [f"{c.i.shards} holds no records", "00000.tar is damaged after 0 sample(s)"]),
    "train-data-missing": lambda c: (_train(c, data=str(c.tmp / "curated")),
                                     [f"training data {c.tmp / 'curated'} does not exist"]),
    "train-data-of-the-other-stage": lambda c: (_train(c, data=c.i.conversations),
                                                [c.i.conversations, "is not captions data", "caption"]),
    # --- evaluation data ---------------------------------------------------------------------------------------
    "suite-missing": lambda c: (_evaluate(c, suite=str(c.tmp / "suite.yaml")),
                                [f"no evaluation suite at {c.tmp / 'suite.yaml'}"]),
    "suite-unknown-task": lambda c: (_evaluate(c, suite=c.i.suite_unknown_task), ["unknown SEA-HELM task 'cvqq'"]),
    "suite-not-a-mapping": lambda c: (_evaluate(c, suite=c.i.suite_list),
                                      [c.i.suite_list, "must hold a mapping", "not a list"]),
    "suite-unknown-key": lambda c: (_evaluate(c, suite=c.i.suite_unknown_key), ["batchsize", "Extra inputs"]),
    "eval-data-wrong-schema": lambda c: (_evaluate(c, suite=c.i.suite_other_schema),
                                         [c.i.other_schema, "has no column(s)", "'ID'", "'question'"]),
    "eval-data-wrong-schema-score": lambda c: (_score(c, data=c.i.other_schema),
                                               [c.i.other_schema, "has no column(s)", "'Label'"]),
    "eval-data-missing-score": lambda c: (_score(c, data=str(c.tmp / "cvqa.parquet")),
                                          [f"{c.tmp / 'cvqa.parquet'} does not exist"]),
    "predictions-not-jsonl": lambda c: (_score(c, predictions=c.i.predictions_not_jsonl),
                                        [f"{c.i.predictions_not_jsonl} line 1 is not JSON"]),
    # --- model folders -----------------------------------------------------------------------------------------
    "model-folder-missing": lambda c: (_evaluate(c, model=str(c.tmp / "model")),
                                       [f"{c.tmp / 'model'} does not exist"]),
    "model-folder-pickle-only": lambda c: (_train(c, init_model=str(c.i.pickled)),
                                           [str(c.i.pickled), "only pickle weights (pytorch_model.bin)"]),
    "model-folder-no-config": lambda c: (_train(c, init_model=str(c.i.no_config)),
                                         [f"{c.i.no_config} has no config.json"]),
    "model-folder-no-config-plan": lambda c: (["plan", "--model", str(c.i.no_config)],
                                              [f"{c.i.no_config} has no config.json"]),
    # --- checkpoint folders ------------------------------------------------------------------------------------
    "checkpoint-of-another-run": lambda c: ([*_train(c), "--checkpoint-uri", str(c.i.root / "checkpoints" /
                                                                                  "other-run")],
                                            ["was written by another run", "init_model: checkpoint '0123456789abcdef'",
                                             "s3://elsewhere/captions"]),
    "checkpoint-trainer-json-corrupt": lambda c: ([*_train(c), "--checkpoint-uri", str(c.i.root / "checkpoints" /
                                                                                        "corrupt")],
                                                  ["corrupt/step-00000010/trainer.json"]),
    # --- registry names ----------------------------------------------------------------------------------------
    "registry-name-malformed": lambda c: (_pull(c, f"{REGISTERED}/1"),
                                          [f"'{REGISTERED}/1' is not a registered version", "models:/NAME/VERSION"]),
    "registry-version-missing": lambda c: (_pull(c, f"models:/{REGISTERED}/7"),
                                           [f"models:/{REGISTERED}/7: no such registered version", "version=7"]),
    "registry-version-not-a-number": lambda c: (_pull(c, f"models:/{REGISTERED}/latest"),
                                                [f"models:/{REGISTERED}/latest", "must be an integer"]),
    "registry-out-not-empty": lambda c: (_pull(c, f"models:/{REGISTERED}/1", out=_full_folder(c)),
                                         [f"{c.tmp / 'mine'} exists and is not an empty folder"]),
    "registry-alias-missing-evaluate": lambda c: (_evaluate(c, model=f"models:/{REGISTERED}@champion"),
                                                  [f"models:/{REGISTERED}@champion", "alias champion not found"]),
    "registry-version-missing-train": lambda c: (_train(c, init_model=f"models:/{REGISTERED}/3"),
                                                 [f"models:/{REGISTERED}/3", "version=3", "not found"]),
}

def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime)} of everything under `folder`."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_named_exits_2_and_leaves_nothing(case, inputs, demo, request, tmp_path, monkeypatch):
    # local state (the MLflow store, kfp.local's pipeline root) lives outside the folder that is checked
    home = (request.getfixturevalue("registry") if case.startswith("registry-")
            else tmp_path.parent / f"{tmp_path.name}-home")
    monkeypatch.setenv("SEAVL_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    # as in a fresh process: no tracking URI set by an earlier test; a store MLflow makes of its own in the
    # current folder would show up as something written
    import mlflow.tracking._tracking_service.utils as mlflow_uri

    monkeypatch.setattr(mlflow_uri, "_tracking_uri", None)
    monkeypatch.chdir(tmp_path)
    c = SimpleNamespace(i=inputs, demo=demo, tmp=tmp_path, out=str(tmp_path / "out"))
    argv, named = CASES[case](c)
    before = _tree(tmp_path)

    result = CliRunner().invoke(app, argv)

    assert result.exit_code == 2, f"exit {result.exit_code}:\n{result.output[-3000:]}"
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output[-3000:]
    lines = result.output.splitlines()
    assert any(line.startswith("error: ") for line in lines) or lines[0].startswith("Usage: "), result.output
    said = " ".join(result.output.replace("│", " ").split())   # click's usage errors come in a box
    for needle in named:
        assert needle in said, f"{needle!r} not in: {said}"
    assert _tree(tmp_path) == before, "something was written"
    assert not (home / "pipeline_root").exists()   # no pipeline task ran
