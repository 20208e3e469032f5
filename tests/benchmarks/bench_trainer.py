"""Trainer throughput on the tiny model next to a plain padded-batch loop, in the same process.

    make bench        (or: python -m tests.benchmarks.bench_trainer --steps 60)

Prints samples/s of both and their ratio; asserts nothing about time. The baseline is the loop a plain
transformers setup runs (the same collator, AdamW, no accelerate), so the ratio shows what the project's
machinery (accelerate, logging, data loading) costs or saves.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def plain_loop(model_dir: str, curated: str, steps: int, batch_size: int) -> float:
    import random

    import torch

    from components.common.chat import collate, special_image_ids
    from components.train.data import CaptionSamples
    from components.train.loop import load_model

    model, processor = load_model(Path(model_dir))
    samples = CaptionSamples(curated)
    never = special_image_ids(model.config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    rng = random.Random(0)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        batch = collate(processor, [samples[i] for i in rng.sample(range(len(samples)), batch_size)], never)
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    from components.train import recipes
    from components.train.loop import TrainConfig
    from demo.build import ensure_demo

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    demo = ensure_demo()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(demo.captions).parent
        curated = Path(tmp) / "curated.jsonl"
        rows = [json.loads(line) for line in Path(demo.captions).read_text().splitlines()]
        curated.write_text("".join(json.dumps({**r, "image": str(root / r["image"])}) + "\n" for r in rows))
        baseline = plain_loop(demo.base_model, str(curated), args.steps, args.batch_size)
        t0 = time.perf_counter()
        recipes.cpt(demo.base_model, str(curated), Path(tmp) / "m",
                    TrainConfig(max_steps=args.steps, batch_size=args.batch_size, log_every=10 ** 9))
        ours = args.steps * args.batch_size / (time.perf_counter() - t0)  # includes model load and save
    print(f"plain loop: {baseline:8.1f} samples/s")
    print(f"trainer:    {ours:8.1f} samples/s (incl. load + save)")
    print(f"ratio trainer/plain: {ours / baseline:.2f}")


if __name__ == "__main__":
    main()
