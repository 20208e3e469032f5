"""The trainer on the tiny model: it learns, and a restart resumes from its checkpoint."""
import json

import pytest

from components.train import recipes
from components.train.loop import TrainConfig


@pytest.fixture(scope="module")
def curated(demo, tmp_path_factory):
    """The first 256 caption pairs, curated by validate_data (a folder of Parquet files)."""
    from pathlib import Path

    from components.validate_data.core import ValidateConfig, validate

    work = tmp_path_factory.mktemp("data")
    root = Path(demo.captions).parent
    rows = [json.loads(line) for line in Path(demo.captions).read_text().splitlines()[:256]]
    manifest = work / "first-256.jsonl"
    manifest.write_text("".join(json.dumps({**r, "image": str(root / r["image"])}) + "\n" for r in rows))
    # synthetic shapes: no Southeast-Asian context, and look-alike scenes (see pipelines/configs/demo.yaml)
    report = validate(str(manifest), work / "out", ValidateConfig(min_sea_score=0.0, near_duplicate_bits=-1,
                                                                  image_root=str(root)))
    assert report.rows_curated == 256
    return str(work / "out" / "curated")


def test_cpt_loss_falls_and_the_model_is_saved(demo, curated, tmp_path):
    logged = []
    cfg = TrainConfig(max_steps=30, batch_size=8, learning_rate=2e-3, log_every=10)
    result = recipes.cpt(demo.base_model, curated, tmp_path / "model", cfg, lambda m, s: logged.append((s, m)))
    assert result.steps == 30 and result.samples == 256
    # The base has never seen an image prompt: caption loss starts high and falls by more than half.
    assert result.first_loss > 2.0 and result.final_loss < result.first_loss / 2
    assert [s for s, _ in logged] == [10, 20, 30]
    assert {"train/loss", "train/lr", "train/samples_per_s", "train/tokens_per_s"} <= set(logged[0][1])
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert (tmp_path / "model" / "processor_config.json").exists()
    # what the tracking wrapper logs: the config as params, first/final loss and wall time on the pipeline run
    logged_run = result.logged("cpt", cfg, init_model=demo.base_model, data=curated)
    assert logged_run.params["max_steps"] == 30 and logged_run.params["data"] == curated
    assert logged_run.pipeline_metrics["cpt/final_loss"] == result.final_loss


def test_restart_resumes_from_the_last_checkpoint(demo, curated, tmp_path):
    cfg = TrainConfig(max_steps=12, batch_size=8, seed=3, checkpoint_every=6)
    full = recipes.cpt(demo.base_model, curated, tmp_path / "model", cfg)
    assert len(full.losses) == 12
    assert [p.name for p in (tmp_path / "model-work" / "checkpoints").glob("checkpoint_*")] == ["checkpoint_0"]
    # The same step started again in the same place (a retried pod) picks up at the step-6 checkpoint:
    # model, optimizer, scheduler, sampler and RNG states restored, the six seen batches skipped.
    resumed = recipes.cpt(demo.base_model, curated, tmp_path / "model", cfg)
    assert len(resumed.losses) == 6
    assert resumed.losses == pytest.approx(full.losses[6:], rel=1e-4)


def test_replay_mixes_text_samples_in(demo, curated):
    from components.train.data import CaptionSamples, ChatSamples, WithReplay

    mixed = WithReplay(CaptionSamples(curated), ChatSamples(str(demo.root / "data" / "text.jsonl")), 0.25, seed=0)
    assert len(mixed) == 256 + 64
    assert len(set(mixed.replay_index)) == 64
    last = mixed[len(mixed) - 1]
    assert all(c["type"] == "text" for m in last for c in m["content"])
    with pytest.raises(ValueError):
        WithReplay(CaptionSamples(curated), None, 1.5, seed=0)
