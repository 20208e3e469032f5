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
import string
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.support import seahelm as data

RELEASE = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "sealion-v4-27b-vl.yaml"
SUITE = RELEASE.with_name("sealion-v4-27b-vl-suite.yaml")
BUCKET = "sealion-vl"
SHARDS, PER_SHARD, SFT_RECORDS = 3, 4, 12
CAPTIONS = ("Pasar terapung di Bangkok", "Nasi lemak dengan sambal, telur rebus dan ikan bilis di atas daun pisang",
            "Candi Borobudur saat matahari terbit")


def _model(src: Path, dest: Path) -> None:
    from components.train.plan import named_config

    shutil.copytree(src, dest)
    config = named_config("gemma-3-27b").to_dict()
    (dest / "config.json").write_text(json.dumps(config))


def _eval_data(root: Path) -> None:
    """Every file the release suite names, in its dataset's public schema, a few items each."""
    import yaml

    from components.evaluate.seahelm.tasks import WORLD_CUISINES_LANGS, WORLD_CUISINES_PROMPT_TYPES, prompts

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
            else:   # SEA-HELM's text files: {"id", "label", "prompts"}, the prompt's fields its template's
                template = prompts()[task]["languages"][lang]["task_template"]
                fields = {name: "teks" for _, name, _, _ in string.Formatter().parse(template) if name}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"id": f"{task}-{lang}", "label": ["jawaban"] if task == "qa" else "A",
                                            "prompts": [fields]}) + "\n")
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
    for n in range(SHARDS):
        with tarfile.open(shards / f"{n:05d}.tar", "w") as tar:
            for k in range(PER_SHARD):
                key = f"{n:05d}{k:04d}"
                caption = CAPTIONS[(n + k) % len(CAPTIONS)]
                for name, blob in ((f"{key}.jpg", jpeg(n * PER_SHARD + k)), (f"{key}.txt", caption.encode()),
                                   (f"{key}.json", b'{"lang": "id"}')):
                    info = tarfile.TarInfo(name)
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
    sft = root / "data/mammoth-vl/mammoth_si_10M.jsonl"
    (sft.parent / "img").mkdir(parents=True)
    with sft.open("w") as f:
        for i in range(SFT_RECORDS):
            (sft.parent / f"img/{i}.jpg").write_bytes(jpeg(100 + i))
            f.write(json.dumps({"id": str(i), "image": f"img/{i}.jpg", "conversations": [
                {"from": "human", "value": "<image>\nWhat is this?"},
                {"from": "gpt", "value": "A floating market. " * (1 + i % 7)}]}) + "\n")
    sft.with_name("no-images.jsonl").write_text(sft.read_text().replace('"img/', '"missing/'))
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
    assert f"{SHARDS} shard file(s)" in result.output and " 0 bytes" not in result.output
    assert f"the {SFT_RECORDS} image(s) named by {SFT_RECORDS} sampled record(s) exist" in result.output
    assert_predicted_costs(result.output)


def _cost_rows(output: str) -> dict[str, list[str]]:
    """The rows of the printed cost table: {stage: [samples, text tokens, images, image tokens, FLOPs, GPUs,
    GPU-hours, wall-clock]}."""
    table = output.split("predicted cost on", 1)[1]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 9 and cells[0] and cells[0] not in ("stage",):
            rows[cells[0]] = cells[1:]
    return rows


def assert_predicted_costs(output: str) -> None:
    """Per stage: its samples from the release's steps and global batch, FLOPs within the bounds that the 27B
    model's size and the stage's sequence lengths allow, GPU-hours = FLOPs / (MFU x the H100's peak), wall-clock =
    GPU-hours / GPUs."""
    from components.train.plan import counts, named_config

    rows = _cost_rows(output)
    assert {"cpt", "sft", "evaluate base", "evaluate cpt", "evaluate candidate",
            "evaluate champion (if one is registered)", "evaluate gemma-3-27b-it", "total"} <= set(rows), output
    assert "NVIDIA-H100-80GB-HBM3 (989 TFLOP/s bf16 per GPU) at MFU 0.30" in output
    assert "MFU 0.30: assumed: the reference loop's MFU as measured on one H100" in output
    params = counts(named_config("gemma-3-27b")).language_model
    for stage, steps, max_length in (("cpt", 39063, 2048), ("sft", 2110, 8192)):
        samples, _, images, _, flops, gpus, gpu_hours, _ = rows[stage]
        samples, flops, gpus, gpu_hours = int(samples.replace(",", "")), float(flops), int(gpus), float(
            gpu_hours.replace(",", ""))
        assert (samples, gpus) == (steps * 256, 32), rows[stage]
        # every sample holds an image's 256 tokens; none is longer than max_length (+ its image through the tower)
        assert 6 * params * 256 * samples < flops < 6.5 * params * max_length * samples, (stage, flops)
        assert gpu_hours == pytest.approx(flops / (0.30 * 989e12) / 3600, rel=1e-3), rows[stage]
    assert float(rows["total"][6].replace(",", "")) == pytest.approx(
        sum(float(r[6].replace(",", "")) for stage, r in rows.items() if stage != "total"), abs=0.2)


@pytest.mark.parametrize(("override", "message"), [
    (["caption_manifest=s3://sealion-vl/data/captions/missing/"], "data/captions/missing/ does not exist"),
    (["base_model=s3://sealion-vl/models/pickle-only"], "holds only pickle weights (pytorch_model.bin)"),
    (["train_gpu=1"], "unknown pipeline parameter(s) ['train_gpu']"),
    (["train_gpus=1", "train_nodes=1"], "does not fit"),
    (["sft_conversations=s3://sealion-vl/data/mammoth-vl/no-images.jsonl"], "image(s) named by"),
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
