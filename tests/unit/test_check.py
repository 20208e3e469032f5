"""`seavl check` on the release run (pipelines/configs/sealion-v4-27b-vl.yaml), unchanged, against a real S3 server
(moto) holding small stand-ins under the same keys of the bucket `sealion-vl` (tests/support/standin.py); then
broken variants, each failing with its own message."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.support import standin
from tests.support.standin import BUCKET, RELEASE, SFT_RECORDS, SHARDS


@pytest.fixture(scope="module")
def release_bucket(s3_server, demo, tmp_path_factory):
    """The bucket `sealion-vl` holding stand-ins under every key the release configuration and its suite name."""
    import boto3

    root = tmp_path_factory.mktemp("sealion-vl")
    standin.build(root, demo.root)
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=BUCKET)
    standin.upload(s3_server, root)
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
    expected = {"cpt", "sft", "evaluate base", "evaluate cpt", "evaluate candidate",
                "evaluate champion (if one is registered)", "evaluate reference gemma-3-27b-it",
                "total (all of the above)"}
    assert expected <= set(rows), output
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
    assert float(rows["total (all of the above)"][6].replace(",", "")) == pytest.approx(
        sum(float(r[6].replace(",", "")) for stage, r in rows.items() if not stage.startswith("total")), abs=0.2)


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


README = RELEASE.parents[2] / "README.md"


def _release_section() -> str:
    text = README.read_text()
    return text.split("## Reproduce the release", 1)[1].split("\n## ", 1)[0]


def _commands(section: str) -> list[str]:
    """The shell commands of the section's code blocks, continuation lines joined, comments dropped."""
    import re

    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.split("  #", 1)[0].strip() for line in joined.splitlines() if line.strip()]


def test_every_seavl_command_of_the_release_walk_through_parses():
    """Each `seavl` line of README's "Reproduce the release" is a command with options this CLI takes (parsed by
    click, not run), and every file of the project that the section names exists."""
    import shlex

    import typer

    section = _release_section()
    commands = _commands(section)
    seavl = [shlex.split(c)[1:] for c in commands if c.startswith(".venv/bin/seavl ")]
    assert {a[0] for a in seavl} == {"check", "submit"} and len(seavl) >= 5, commands
    group = typer.main.get_command(app)
    for args in seavl:
        sub = group.get_command(None, args[0])
        sub.make_context(args[0], args[1:])   # raises on an unknown option or a missing value
    assert ".venv/bin/python -m tests.support.standin &" in commands
    import re

    for path in set(re.findall(r"`?((?:pipelines|tests|components)/[\w./-]+\.(?:py|yaml))", section)):
        assert (RELEASE.parents[2] / path).exists() or path.endswith("measured-mfu.json"), path


def test_the_figures_the_walk_through_quotes_are_what_the_stand_ins_give(release_bucket, local_mlflow):
    """README quotes the stand-in run's predicted CPT and SFT GPU-hours, CPT's wall-clock and the memory one node
    would need: the same as `seavl check` prints (a change to the planner or the cost model shows here)."""
    import re

    section = " ".join(_release_section().split())
    quoted = re.search(r"about ([\d,]+) GPU-hours for CPT \(([\d.]+ h) on 32 H100s\) and ([\d.]+) for SFT", section)
    assert quoted, section
    rows = _cost_rows(seavl_check().output)
    assert (rows["cpt"][6], rows["cpt"][7], rows["sft"][6]) == quoted.groups()
    node = re.search(r"the ([\d.]+) GB per GPU that one node would need", section)
    one_node = seavl_check("train_nodes=1")
    assert one_node.exit_code == 2 and f"does not fit: {node.group(1)} GB per GPU" in one_node.output


def test_the_check_passes_against_a_real_tracking_server_and_names_what_it_cannot_find_there(release_bucket,
                                                                                              tracking_server):
    """The MLflow server answers (its row says so); a reference model given as a registered version that its
    registry does not hold is named; a store these credentials cannot write under is named."""
    from pipelines.check import check_run
    from pipelines.cli import read_yaml

    args = read_yaml(RELEASE)
    report = check_run(args, predict=False)
    rows = {(c.what, c.target.split("=")[0]): c for c in report.checks}
    assert report.ok, [c for c in report.checks if not c.ok]
    assert rows[("tracking", "MLFLOW_TRACKING_URI")].detail == f"{tracking_server.uri} answers"
    assert rows[("artifact store", "checkpoint_root")].detail.endswith("bucket sealion-vl exists, writable")
    broken = check_run({**args, "reference_models": {"gemma-3-27b-it": "models:/no-such-model/1"},
                        "checkpoint_root": "/etc/hostname/checkpoints"}, predict=False)
    failed = [c for c in broken.checks if not c.ok]
    assert [c.what for c in failed] == ["model", "artifact store"], failed
    assert "models:/no-such-model/1 is not in the registry at" in failed[0].detail
    assert failed[1].detail.startswith("local folder, but nothing can be written under /etc/hostname/checkpoints")


def test_seavl_evaluate_reads_its_suite_from_s3(release_bucket, local_mlflow, tmp_path):
    """--suite takes an s3:// URI as every other input does (a missing one is named as it was given)."""
    result = CliRunner().invoke(app, ["evaluate", "--model", "s3://sealion-vl/models/gemma-3-27b-it", "--suite",
                                      "s3://sealion-vl/eval/seahelm/missing.yaml", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no evaluation suite at s3://sealion-vl/eval/seahelm/missing.yaml" in \
        result.output, result.output


def test_registered_versions_are_checked_planned_and_priced_like_folders(release_bucket, local_mlflow, demo,
                                                                         tmp_path):
    """A base or reference model given as models:/NAME/VERSION (or @ALIAS): looked up in the registry, its
    config.json read from the version itself, so the plan and the costs are those of its shape."""
    import shutil

    from mlflow.tracking import MlflowClient

    from pipelines.check import check_run
    from pipelines.cli import read_yaml

    folder = tmp_path / "version"
    standin.model(demo.root / "base-model", folder)
    client = MlflowClient()
    run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri()))
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.create_registered_model("previous")
    client.create_model_version("previous", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("previous", "champion", "1")
    # ...and a version as the pipeline registers it: an MLflow model whose save_pretrained folder is `weights/`
    from components.common import tracking, vlm_pyfunc
    from components.register.core import flavor_files

    tags = {"weights_fingerprint": "w" * 64, "git_commit": "abc"}
    files = flavor_files(tmp_path / "flavor", vlm_pyfunc.checksums(folder), "# card\n", tags)
    tracking.log_model_version("registered", run.info.run_id, folder, files, tags, {}, "why",
                               identity="weights_fingerprint")
    shutil.rmtree(folder)
    args = {**read_yaml(RELEASE), "base_model": "models:/previous@champion",
            "reference_models": {"previous": "models:/previous/1", "registered": "models:/registered/1"}}
    report = check_run(args)
    assert report.ok, [c for c in report.checks if not c.ok]
    rows = {c.target: c for c in report.checks}
    assert rows["base_model=models:/previous@champion"].detail.startswith("registered version 1 of previous, gemma3")
    assert rows["reference_models.registered=models:/registered/1"].detail.startswith(
        "registered version 1 of registered, gemma3")
    assert rows["cpt_training"].detail.startswith("fits: 41.9 GB per GPU")   # the 27B shape, from the version
    assert {"evaluate reference previous", "evaluate reference registered", "cpt", "sft"} <= \
        {c.stage for c in report.costs}, report.unpredicted
    assert report.tokenizer == "the base model's tokenizer"
