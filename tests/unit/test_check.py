"""`seavl check` on the release run (pipelines/configs/sealion-v4-27b-vl.yaml), unchanged, against a real S3 server
(moto) holding small stand-ins under the same keys of the bucket `sealion-vl`; then broken variants, each failing
with its own message.

The stand-in models are the demo's tiny model folder (real safetensors, processor, tokenizer) with the config.json
of Gemma-3-27B (the planner's record of google/gemma-3-27b-it's configuration): the check reads only a model's
listing, config.json and safetensors headers, so it plans the 27B model the release trains while the weights
stay tiny. The check cannot tell such a stand-in from the real folder; that is its point: it reads no weights."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.support import seahelm as data

RELEASE = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "sealion-v4-27b-vl.yaml"
SUITE = RELEASE.with_name("sealion-v4-27b-vl-suite.yaml")
BUCKET = "sealion-vl"


def _model(src: Path, dest: Path) -> None:
    from components.train.plan import named_config

    shutil.copytree(src, dest)
    config = named_config("gemma-3-27b").to_dict()
    (dest / "config.json").write_text(json.dumps(config))


def _eval_data(root: Path) -> None:
    """Every file the release suite names, in its dataset's public schema, a few items each."""
    import yaml

    from components.evaluate.seahelm.tasks import WORLD_CUISINES_LANGS, WORLD_CUISINES_PROMPT_TYPES

    suite = yaml.safe_load(SUITE.read_text())
    for task, spec in suite["tasks"].items():
        langs = spec.get("languages") or list(spec["data"])
        files = spec["data"] if isinstance(spec["data"], dict) else dict.fromkeys(langs, spec["data"])
        for lang, uri in files.items():
            path = root / uri.split(f"s3://{BUCKET}/", 1)[1]
            if path.exists():   # CVQA and WorldCuisines: one file for every language
                continue
            if task == "xm3600":
                data.xm3600(path, [(f"{lang}{i}", [f"caption {i}"]) for i in range(2)])
            elif task == "marvl":
                data.marvl(path, [(f"{lang}{i}", "hipotesis", bool(i % 2)) for i in range(2)])
            elif task == "cvqa":
                data.cvqa(path, [(f"{la}{i}", la, i) for la in langs for i in range(2)])
            elif task.startswith("world_cuisine"):   # 5 items per prompt type: SEA-HELM's reshuffle needs that
                rows = [(f"{la}-{t}-{i}", WORLD_CUISINES_LANGS[la], t, i % 5) for la in langs
                        for t in WORLD_CUISINES_PROMPT_TYPES[task.rsplit("_", 1)[1]] for i in range(5)]
                data.world_cuisines(path, rows, root / "eval/seahelm/world_cuisines")
            else:   # SEA-HELM's text files: {"id", "label", "prompts"}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"id": f"{task}-{lang}", "label": ["jawaban"] if task == "qa" else "A",
                                            "prompts": [{"text": "teks", "question": "?"}]}) + "\n")
    (root / "eval/seahelm/judge").mkdir(parents=True)
    (root / "eval/seahelm/judge/open_clip_pytorch_model.bin").write_bytes(b"stand-in")
    (root / "eval/seahelm/metricx").mkdir(parents=True)
    (root / "eval/seahelm/metricx/config.json").write_text("{}")
    shutil.copy(SUITE, root / "eval/seahelm/suite.yaml")


def _upload(endpoint: str, root: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(f), BUCKET, f.relative_to(root).as_posix())


@pytest.fixture(scope="module")
def release_bucket(s3_server, demo, tmp_path_factory):
    """The bucket `sealion-vl` holding stand-ins under every key the release configuration and its suite name."""
    import boto3

    from tests.support.corpus import jpeg

    root = tmp_path_factory.mktemp("sealion-vl")
    _model(demo.root / "base-model", root / "models/gemma-sea-lion-v4-27b-it")
    _model(demo.root / "base-model", root / "models/gemma-3-27b-it")
    pickle_only = root / "models/pickle-only"   # a broken variant: the same folder with pickle weights
    _model(demo.root / "base-model", pickle_only)
    (pickle_only / "model.safetensors").rename(pickle_only / "pytorch_model.bin")
    shards = root / "data/captions/shards"
    shards.mkdir(parents=True)
    for n in range(2):
        with tarfile.open(shards / f"{n:05d}.tar", "w") as tar:
            for name, blob in ((f"{n:05d}0000.jpg", jpeg(n)), (f"{n:05d}0000.txt", b"Pasar terapung di Bangkok"),
                               (f"{n:05d}0000.json", b'{"lang": "id"}')):
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    sft = root / "data/mammoth-vl/mammoth_si_10M.jsonl"
    sft.parent.mkdir(parents=True)
    sft.write_text(json.dumps({"id": "0", "image": "img/0.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A market."}]}) + "\n")
    _eval_data(root)
    # a broken variant: the same suite, its CVQA file CVQA's public test split, answers hidden (Label -1)
    data.cvqa(root / "eval/seahelm/cvqa/public-test.parquet", [("h0", "id", -1), ("h1", "ms", 2)])
    (root / "eval/seahelm/suite-hidden.yaml").write_text(
        SUITE.read_text().replace("cvqa/test.parquet", "cvqa/public-test.parquet"))
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=BUCKET)
    _upload(s3_server, root)
    return s3_server


def seavl_check(*overrides: str):
    args = ["check", "--config", str(RELEASE)]
    for item in overrides:
        args += ["--set", item]
    return CliRunner().invoke(app, args)


def test_the_release_configuration_passes_against_stand_ins_under_its_keys(release_bucket, local_mlflow):
    result = seavl_check()
    assert result.exit_code == 0, result.output
    assert "checks passed" in result.output
    assert "fits" in result.output and "FAILED" not in result.output
    assert "2 shard file(s)" in result.output and "0 bytes" not in result.output


@pytest.mark.parametrize(("override", "message"), [
    (["caption_manifest=s3://sealion-vl/data/captions/missing/"], "data/captions/missing/ does not exist"),
    (["base_model=s3://sealion-vl/models/pickle-only"], "holds only pickle weights (pytorch_model.bin)"),
    (["train_gpu=1"], "unknown pipeline parameter(s) ['train_gpu']"),
    (["train_gpus=1", "train_nodes=1"], "does not fit"),
])
def test_a_broken_variant_fails_with_its_own_message(release_bucket, local_mlflow, override, message):
    result = seavl_check(*override)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors and all(message in e for e in errors), result.output


def test_an_evaluation_split_without_gold_labels_is_named_before_the_run(release_bucket, local_mlflow):
    result = seavl_check("eval_suite=s3://sealion-vl/eval/seahelm/suite-hidden.yaml")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert any(e.startswith("error: eval data cvqa/id:") and "have no answer (Label -1" in e for e in errors), errors
    assert all(e.startswith("error: eval data cvqa/") for e in errors), errors   # one row per CVQA language


def test_a_tracking_server_that_does_not_answer_fails_the_check(release_bucket, monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    result = seavl_check()
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "cannot be reached" in errors[0], result.output


def test_submit_runs_the_check_first_and_stops_on_a_failure(release_bucket, local_mlflow):
    """Nothing is compiled or sent: the KFP host here would not answer, and its error is not what stops it."""
    result = CliRunner().invoke(app, ["submit", "--host", "http://127.0.0.1:9", "--no-check-secret", "--config",
                                      str(RELEASE), "--param", "base_model=s3://sealion-vl/models/pickle-only"])
    assert result.exit_code == 2, result.output
    assert "error: model base_model=s3://sealion-vl/models/pickle-only" in result.output
    assert "1 of" in result.output and "KFP API" not in result.output
