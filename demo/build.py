"""Build the embedded default once and cache it: `ensure_demo()` returns where the corpus and base model are.

The cache folder's name is a hash of the generator's source files and the seed, so editing the generator
rebuilds the demo and an unchanged generator reuses it. The build is deterministic given the seed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from components.common import storage

log = logging.getLogger(__name__)
DEFAULT_SEED = 1234
_GENERATOR_FILES = ("vocabulary.py", "corpus.py", "evalsets.py", "tiny_model.py", "chat_template.jinja", "build.py")


@dataclass(frozen=True)
class Demo:
    root: Path

    @property
    def captions(self) -> str:
        return str(self.root / "data" / "captions.jsonl")

    @property
    def eval_dir(self) -> str:
        return str(self.root / "data" / "eval")

    @property
    def suite(self) -> str:
        return str(self.root / "data" / "eval" / "suite.yaml")

    @property
    def base_model(self) -> str:
        return str(self.root / "base-model")

    @property
    def reference_model(self) -> str:
        """The tiny model as initialised, before any training: the demo's reference model, a floor."""
        return str(self.root / "reference-model")


def generator_hash(seed: int) -> str:
    """A hash of the seed and of every source file whose content shapes the demo (its own files and the
    project's caption instructions and SEA-HELM's prompts, which the SFT and text data use)."""
    from components.common import languages
    from components.evaluate import seahelm

    h = hashlib.sha256(str(seed).encode())
    here = Path(__file__).parent
    for path in [here / name for name in _GENERATOR_FILES] + [Path(languages.__file__),
                                                               Path(seahelm.__file__).with_name("prompts.yaml")]:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def ensure_demo(seed: int = DEFAULT_SEED, cache: Path | None = None) -> Demo:
    """The demo corpus and tiny base model, built on first use into the cache."""
    root = (cache or storage.cache_dir()) / f"demo-{generator_hash(seed)}"
    if (root / "DONE").exists():
        return Demo(root)
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_demo(tmp, seed)
    try:
        tmp.rename(root)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return Demo(root)


def build_demo(root: Path, seed: int) -> dict:
    from demo import corpus, evalsets, tiny_model

    started = time.time()
    counts = corpus.build_corpus(root / "data", seed)
    cfg = tiny_model.TinyModelConfig(seed=seed)
    tokenizer = tiny_model.train_tokenizer(corpus.tokenizer_texts(root / "data"), cfg.vocab_size)
    processor = tiny_model.build_processor(tokenizer, cfg)
    model = tiny_model.build_model(tokenizer, cfg)
    model.save_pretrained(root / "reference-model")
    processor.save_pretrained(root / "reference-model")
    judge = evalsets.train_judge(root / "data" / "eval" / "judge", tokenizer, _caption_pairs(root / "data"), seed)
    losses = pretrain_text(model, processor, root / "data" / "text.jsonl", seed)
    model.save_pretrained(root / "base-model")
    processor.save_pretrained(root / "base-model")
    info = {"seed": seed, "counts": counts, "parameters": sum(p.numel() for p in model.parameters()),
            "text_pretrain_loss": {"first": losses[0], "last": losses[-1]},
            "judge_loss": {"first": judge[0], "last": judge[-1]},
            "build_seconds": round(time.time() - started, 1)}
    (root / "DONE").write_text(json.dumps(info, indent=2))
    log.info("built the demo in %s: %s", root, info)
    return info


def _caption_pairs(data: Path) -> list[tuple[bytes, str]]:
    """(image bytes, caption) of every CPT caption pair: what the demo's CLIP judge learns from."""
    rows = [json.loads(line) for line in (data / "captions.jsonl").read_text(encoding="utf-8").splitlines()]
    return [((data / r["image"]).read_bytes(), r["caption"]) for r in rows]


def pretrain_text(model, processor, text_jsonl: Path, seed: int, steps: int = 300, batch_size: int = 32,
                  lr: float = 3e-3) -> list[float]:
    """Give the base model text ability (translation between the demo languages) before any image is seen,
    so that the gate's no-regression check on text has something to lose. A plain loop: this builds a
    fixture, the project's trainer is components/train."""
    import torch

    from components.common.chat import collate

    rows = [json.loads(line) for line in text_jsonl.read_text(encoding="utf-8").splitlines()]
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = 20  # steps; AdamW on a freshly initialised model diverges without a short ramp
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / steps))
    model.train()
    losses = []
    for _ in range(steps):
        batch = collate(processor, [r["messages"] for r in rng.sample(rows, batch_size)], never_ids=[])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(round(loss.item(), 4))
    model.eval()
    return losses
