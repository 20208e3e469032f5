"""The two training recipes. Each reads top to bottom: setup -> train -> save.

Stage 1, CPT: caption modeling on curated image-caption pairs, from the base model.
Stage 2, SFT: instruction tuning on conversations, from the CPT model; loss on assistant turns only.
Both are the same machinery (components/train/loop.py) fed different samples. Neither touches MLflow: each
returns a `TrainResult` and streams figures through the `log_metrics(metrics, step)` callback it is given.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.common import storage
from components.common.tracking import Logged
from components.train import loop
from components.train.data import CaptionSamples, ChatSamples, WithReplay
from components.train.loop import TrainConfig

LogFn = Callable[[dict, int], None]


def _no_log(metrics: dict, step: int) -> None:
    pass


@dataclass
class TrainResult:
    """What one stage did: optimizer steps, losses (every step), wall time, samples in its data."""
    steps: int
    first_loss: float
    final_loss: float
    train_seconds: float
    samples: int = 0
    losses: list[float] = field(default_factory=list)

    def logged(self, stage: str, cfg: TrainConfig, init_model: str, data: str) -> Logged:
        """The stage's config as params; its first and final loss and wall time as `<stage>/...` figures."""
        return Logged(params={**cfg.model_dump(), "init_model": init_model, "data": data},
                      pipeline_metrics={f"{stage}/first_loss": self.first_loss, f"{stage}/final_loss": self.final_loss,
                                        f"{stage}/train_seconds": self.train_seconds})


def _train(samples, init_model: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn) -> TrainResult:
    out_dir = Path(out_dir)
    accelerator = loop.init(cfg, project_dir=out_dir.with_name(out_dir.name + "-work"))
    model, processor = loop.load_model(storage.localize(init_model), cfg.freeze_vision)
    loader = loop.make_loader(samples, processor, model.config, cfg)
    result = loop.train(accelerator, model, loader, cfg, log_metrics)
    loop.save_model(accelerator, model, processor, out_dir)
    return TrainResult(samples=len(samples), **result)


def _replay(cfg: TrainConfig):
    return ChatSamples(cfg.replay_data) if cfg.replay_data and cfg.replay_fraction > 0 else None


def cpt(base_model: str, captions: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn = _no_log
        ) -> TrainResult:
    """Continued pre-training on captions (labels on caption tokens only), with optional text replay."""
    samples = WithReplay(CaptionSamples(captions), _replay(cfg), cfg.replay_fraction, cfg.seed)
    return _train(samples, base_model, out_dir, cfg, log_metrics)


def sft(init_model: str, conversations: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn = _no_log
        ) -> TrainResult:
    """Supervised fine-tuning on conversations (labels on assistant turns only), with optional text replay."""
    samples = WithReplay(ChatSamples(conversations), _replay(cfg), cfg.replay_fraction, cfg.seed)
    return _train(samples, init_model, out_dir, cfg, log_metrics)
