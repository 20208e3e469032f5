"""The two training recipes. Each reads top to bottom: setup -> train -> save.

Stage 1, CPT: caption modeling on curated image-caption pairs, from the base model.
Stage 2, SFT: instruction tuning on conversations, from the CPT model; loss on assistant turns only.
Both are the same machinery (components/train/loop.py) fed different samples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from components.common import storage, tracking
from components.train import loop
from components.train.data import CaptionSamples, ChatSamples, WithReplay
from components.train.loop import TrainConfig

LogFn = Callable[[dict, int], None]


def _no_log(metrics: dict, step: int) -> None:
    pass


def _run(samples, init_model: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn) -> dict:
    out_dir = Path(out_dir)
    accelerator = loop.init(cfg, project_dir=out_dir.with_name(out_dir.name + "-work"))
    model, processor = loop.load_model(storage.localize(init_model), cfg.freeze_vision)
    loader = loop.make_loader(samples, processor, model.config, cfg)
    summary = loop.train(accelerator, model, loader, cfg, log_metrics)
    loop.save_model(accelerator, model, processor, out_dir)
    summary["samples"] = len(samples)
    return summary


def _replay(cfg: TrainConfig):
    return ChatSamples(cfg.replay_data) if cfg.replay_data and cfg.replay_fraction > 0 else None


def cpt(base_model: str, captions: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn = _no_log) -> dict:
    """Continued pre-training on captions (labels on caption tokens only), with optional text replay."""
    samples = WithReplay(CaptionSamples(captions), _replay(cfg), cfg.replay_fraction, cfg.seed)
    return _run(samples, base_model, out_dir, cfg, log_metrics)


def sft(init_model: str, conversations: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn = _no_log) -> dict:
    """Supervised fine-tuning on conversations (labels on assistant turns only), with optional text replay."""
    samples = WithReplay(ChatSamples(conversations), _replay(cfg), cfg.replay_fraction, cfg.seed)
    return _run(samples, init_model, out_dir, cfg, log_metrics)


def run_stage(stage: str, ctx: tracking.Context, init_model: str, data: str, out_dir: Path, **config) -> dict:
    """What both training components do: build the stage's TrainConfig from the pipeline parameters and run
    its recipe inside the step's nested MLflow run (config as params, losses and throughput as metrics).
    Returns the summary, with the stage's final figures under `final` ({"<stage>/<figure>": value})."""
    import mlflow

    recipe = {"cpt": cpt, "sft": sft}[stage]
    cfg = TrainConfig(**config)
    with tracking.step_run(stage, ctx, params={**cfg.model_dump(), "init_model": init_model, "data": data}):
        summary = recipe(init_model, data, Path(out_dir), cfg,
                         log_metrics=lambda metrics, step: mlflow.log_metrics(metrics, step=step))
        summary["final"] = {f"{stage}/{k}": summary[k] for k in ("first_loss", "final_loss", "train_seconds")}
        mlflow.log_metrics(summary["final"])
        tracking.log_to_parent(summary["final"])
    return summary
